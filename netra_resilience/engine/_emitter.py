"""``RunEvents``: what the engine emits through; numbers, stamps and routes every event."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import Degradation, DegradationEntry
from netra_resilience.engine._delivery import EventDelivery
from netra_resilience.engine._types import EventType

RESERVED_EVENTS = frozenset(
    {EventType.AGENT_STARTED, EventType.AGENT_COMPLETED, EventType.AGENT_DEGRADED}
)
"""Emitted by the stack itself, so each appears exactly once where it belongs."""


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class EventObserver(Protocol):
    """Sees every event of a run (hooks use this). Implementations must not raise."""

    def notify(self, event: Mapping[str, Any]) -> None:
        """Non-blocking; called for every event, even the final one of a cancelled run."""

    async def observe(self, event: Mapping[str, Any]) -> None:
        """Awaited on the run's own path after ``notify`` (never after a cancellation)."""


class RunEvents:
    """The engine's side of event delivery: ``await events("agent_thinking", text="...")``.

    Each event is a dict ``{"type", "run_id", "seq", "degraded", "degradation", "data"}``:
    ``seq`` rises by one per event of the run (so a client can spot a gap and, later, resume),
    and ``degradation`` is a snapshot of the run's flags when the event was emitted. The first
    time each dependency degrades, an ``agent_degraded`` notice (``{"dependency", "reason"}``)
    follows at once. Emitting only queues the event, so it never waits for the user's sink.
    """

    __slots__ = (
        "_closed",
        "_delivery",
        "_noticed",
        "_observers",
        "_seq",
        "_unsubscribe",
        "clock",
        "context",
    )

    def __init__(self, context: ResilienceContext, delivery: EventDelivery, clock: Clock) -> None:
        self.context = context
        self.clock = clock
        self._delivery = delivery
        self._observers: list[EventObserver] = []
        self._seq = 0
        self._closed = False
        self._noticed: set[str] = set()
        self._unsubscribe = context.degradation.subscribe(self._on_mark)

    @property
    def run_id(self) -> str:
        return self.context.run_id or ""

    @property
    def degradation(self) -> Degradation:
        return self.context.degradation

    @property
    def closed(self) -> bool:
        """True once the final event is out (or the run was cancelled): emits are ignored."""
        return self._closed

    def add_observer(self, observer: EventObserver) -> None:
        self._observers.append(observer)

    async def __call__(self, event_type: str, /, **data: Any) -> None:
        """Emit one event; ``data`` becomes its ``"data"`` field."""
        if event_type in RESERVED_EVENTS:
            raise ValueError(f"{event_type!r} is emitted by the engine stack itself")
        if _cancelling():
            return  # the run is being cancelled: only the final event may still go out
        event = self.emit_nowait(event_type, data)
        if event is not None:
            await self.observe(event)

    async def thinking(self, text: str, **data: Any) -> None:
        await self(EventType.AGENT_THINKING, text=text, **data)

    def emit_nowait(self, event_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Build, number and queue an event; notify observers. ``None`` after close."""
        if self._closed:
            return None
        self._seq += 1
        degradation = self.context.degradation
        event = {
            "type": str(event_type),
            "run_id": self.context.run_id,
            "seq": self._seq,
            "degraded": bool(degradation),
            "degradation": degradation.as_dict(),
            "data": data,
        }
        self._delivery.put(event)
        for observer in self._observers:
            try:
                observer.notify(event)
            except Exception:
                continue
        return event

    async def observe(self, event: Mapping[str, Any]) -> None:
        """Run the observers' inline part for ``event`` (hooks awaited on the golden path)."""
        for observer in self._observers:
            try:
                await observer.observe(event)
            except Exception:  # an observer must never break the run it watches
                continue

    def _on_mark(self, degradation: Degradation, entry: DegradationEntry) -> None:
        if entry.dependency in self._noticed or _cancelling():
            return
        self._noticed.add(entry.dependency)
        self.emit_nowait(
            EventType.AGENT_DEGRADED, {"dependency": entry.dependency, "reason": entry.reason}
        )

    def close(self, final_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Emit the final event and refuse every later one."""
        event = self.emit_nowait(final_type, data)
        self._closed = True
        self._unsubscribe()
        self._delivery.close()
        return event
