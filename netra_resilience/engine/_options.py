"""``EventOptions``: how a run's events reach the user's sink."""

from __future__ import annotations

from dataclasses import dataclass

from netra_resilience.validation import Seconds, duration, integer, set_field

_OWNER = "EventOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventOptions:
    """Delivery bounds for one run's events.

    * ``send_timeout``: the most one sink call may take; a timed-out or failed send is retried
      once, and an event that fails twice marks the sink dead for the rest of the run (later
      events are counted as undelivered instead of each waiting out the timeout again).
    * ``queue_size``: events buffered per run while the sink is slow. When full, the oldest
      *intermediate* event (``agent_thinking``, ``tool_*``) is dropped and counted; the
      ``agent_started``, ``agent_degraded`` and final ``agent_completed`` events are never dropped.
    * ``flush_timeout``: how long finishing a run may wait for queued events to be sent.
    * ``include_output``: put the engine's answer in ``agent_completed`` when it is JSON-shaped.
    """

    send_timeout: Seconds = 2.0
    queue_size: int = 256
    flush_timeout: Seconds = 5.0
    include_output: bool = True

    def __post_init__(self) -> None:
        set_field(self, "send_timeout", duration(_OWNER, "send_timeout", self.send_timeout))
        set_field(self, "flush_timeout", duration(_OWNER, "flush_timeout", self.flush_timeout))
        integer(_OWNER, "queue_size", self.queue_size, minimum=1, maximum=1_000_000)
