"""Per-run event delivery: a bounded queue and one sender task in front of the user's sink.

The agent only ever appends to the queue (a synchronous, O(1) step), so a slow or dead sink
can delay the *user's* view of the run but never the run itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from netra_resilience.clock import Clock
from netra_resilience.engine._options import EventOptions
from netra_resilience.engine._types import EventSink, EventType
from netra_resilience.validation import to_seconds

ESSENTIAL_EVENTS = frozenset(
    {EventType.AGENT_STARTED, EventType.AGENT_DEGRADED, EventType.AGENT_COMPLETED}
)
"""Events the full queue never drops: they frame the run and tell the user what degraded."""


@dataclass(slots=True)
class DeliveryStats:
    """What happened to one run's events (returned in :class:`RunResult`)."""

    emitted: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    """Dropped by the full queue (oldest intermediate event first)."""
    failed: int = 0
    """Sent twice without success (timeout or error); the sink is then treated as dead."""
    undelivered: int = 0
    """Still queued when the sink was dead or the flush timed out."""


class EventDelivery:
    """Orders, buffers and sends one run's events; see :class:`EventOptions` for the bounds."""

    __slots__ = (
        "_clock",
        "_closed",
        "_dead",
        "_max",
        "_queue",
        "_ready",
        "_send_timeout",
        "_sink",
        "_task",
        "stats",
    )

    def __init__(self, sink: EventSink | None, clock: Clock, options: EventOptions) -> None:
        self._sink = sink
        self._clock = clock
        self._send_timeout = to_seconds(options.send_timeout)
        self._max = options.queue_size
        self._queue: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._dead = False
        self.stats = DeliveryStats()

    def put(self, event: dict[str, Any]) -> None:
        """Queue ``event`` without waiting (called on the agent's path)."""
        self.stats.emitted += 1
        if self._sink is None or self._closed:
            return
        queue = self._queue
        if len(queue) >= self._max and not self._make_room(event):
            self.stats.dropped += 1
            return
        queue.append(event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_all())
        self._ready.set()

    def _make_room(self, incoming: dict[str, Any]) -> bool:
        """Drop the oldest intermediate event; essentials may exceed the bound (at most 3)."""
        queue = self._queue
        for index, queued in enumerate(queue):
            if queued["type"] not in ESSENTIAL_EVENTS:
                del queue[index]
                self.stats.dropped += 1
                return True
        return incoming["type"] in ESSENTIAL_EVENTS

    def close(self) -> None:
        """No more events; the sender finishes what is queued, then stops."""
        self._closed = True
        self._ready.set()

    async def _send_all(self) -> None:
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self._closed:
                        return
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                event = queue.popleft()
                final = event["type"] == EventType.AGENT_COMPLETED
                if self._dead and not final:
                    self.stats.undelivered += 1
                    continue
                if not await self._send(event, attempts=1 if self._dead else 2):
                    self.stats.failed += 1
                    self._dead = True
        finally:
            self.stats.undelivered += len(queue)
            queue.clear()

    async def _send(self, event: dict[str, Any], *, attempts: int) -> bool:
        sink = self._sink
        assert sink is not None
        for attempt in range(attempts):
            if attempt:
                self.stats.retried += 1
            try:
                async with self._clock.timeout(self._send_timeout):
                    await sink(event)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    self.stats.undelivered += 1  # the event in flight
                    raise  # our own flush deadline (or shutdown): stop
                continue  # the sink raised CancelledError by itself (a closing socket)
            except Exception:  # includes our own TimeoutError; the sink's errors stay here
                continue
            self.stats.sent += 1
            return True
        return False

    async def flush(self, within: float) -> None:
        """Wait (at most ``within`` seconds on the clock) for queued events to be sent, then stop.

        If the caller is cancelled meanwhile, the sender keeps going (shielded) so the caller
        can hand a fresh :meth:`flush` to a background task: the final event still goes out.
        """
        self.close()
        task = self._task
        if task is None or task.done():
            return
        try:
            async with self._clock.timeout(within):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
