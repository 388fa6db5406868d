"""Hooks: named side effects (analytics, monitoring, audit) that must never sink a run.

Each hook gets its own pipeline (circuit breaker outside a short timeout). While the breaker
is open the hook is *skipped*: not called, not awaited, not queued, and the run's degradation
reads ``<hook>=skipped``. A hook that failed once in a run is also skipped for the rest of that
run, so the latency a broken inline hook adds to one run is at most one ``timeout``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health import Criticality
from netra_resilience.validation import Seconds, duration, set_field

HookFn = Callable[[Mapping[str, Any]], Awaitable[object]]
"""``async def hook(event) -> None``: receives each (read-only) event it subscribed to."""

ALL_EVENTS: frozenset[str] = frozenset()
"""``Hook(events=ALL_EVENTS)`` (the default): every event of the run."""

_OWNER = "Hook"


def _criticality(value: object) -> Criticality:
    try:
        return Criticality(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(c.value for c in Criticality)
        raise InvalidOptionsError(_OWNER, "criticality", f"must be one of {allowed}") from None


def default_hook_breaker() -> CircuitBreakerOptions:
    """Open after half of at least 3 calls in 30 s failed; stay open 30 s."""
    return CircuitBreakerOptions(
        failure_ratio=0.5, minimum_throughput=3, sampling_duration=30.0, break_duration=30.0
    )


@dataclass(frozen=True, slots=True)
class Hook:
    """A named hook: ``Hook("analytics", send_event, timeout=0.5)``.

    * ``background=True`` (default): fire-and-forget through the bounded hook queue; the run
      never waits for it. ``False``: awaited on the run's path (for hooks whose effect must
      happen before the run moves on), bounded by ``timeout`` and skipped while open.
    * ``events``: the event types that trigger the hook (empty = all).
    * ``criticality``: how much the service depends on it (reported to health, not enforced
      here: a hook never fails a run).
    """

    name: str
    fn: HookFn
    _: KW_ONLY
    timeout: Seconds = 1.0
    background: bool = True
    events: Collection[str] = ALL_EVENTS
    criticality: Criticality | str = Criticality.OPTIONAL
    breaker: CircuitBreakerOptions | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Hook.name must be a non-empty string")
        if not callable(self.fn):
            raise ValueError(f"Hook.fn must be an async callable, got {type(self.fn).__name__}")
        set_field(self, "timeout", duration(_OWNER, "timeout", self.timeout))
        set_field(self, "events", frozenset(str(e) for e in self.events))
        set_field(self, "criticality", _criticality(self.criticality))
        if self.breaker is None:
            set_field(self, "breaker", default_hook_breaker())

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


def as_hooks(hooks: Mapping[str, HookFn] | Collection[Hook]) -> tuple[Hook, ...]:
    """Accept ``{"analytics": fn}`` (defaults) or ``[Hook(...), ...]``; names must be unique."""
    items = (
        tuple(Hook(name, fn) for name, fn in hooks.items())
        if isinstance(hooks, Mapping)
        else tuple(hooks)
    )
    names = [hook.name for hook in items]
    if len(set(names)) != len(names):
        raise ValueError(f"hook names must be unique, got {names}")
    return items
