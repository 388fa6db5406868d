"""A breaker's states, the record of one transition, and their ordered delivery to telemetry,
the ``on_*`` callbacks and state listeners.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from netra_resilience.telemetry import Severity, Telemetry

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._windows import HealthInfo
    from netra_resilience.context import ResilienceContext


class CircuitState(StrEnum):
    """Where a breaker stands.

    ``ISOLATED`` is set by hand (:class:`CircuitBreakerControl` or ``breaker.isolate()``) and
    only a manual close leaves it; the other three are driven by call outcomes.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    ISOLATED = "isolated"


@dataclass(frozen=True, slots=True)
class CircuitStateChange:
    """One transition, as the callbacks, listeners and a store report it.

    ``reason`` says why: ``failure_ratio``, ``slow_call_ratio``, ``consecutive_failures``,
    ``probe_failed``, ``probe_slow``, ``probe_abandoned`` (cancelled or past
    ``half_open_max_wait``), ``break_elapsed``, ``probe_requested``, ``probes_succeeded``,
    ``resync`` or ``manual``. ``failure_type`` is the type name of the outcome that opened the
    circuit, never its message (messages can carry secrets).
    """

    dependency: str
    old_state: CircuitState
    new_state: CircuitState
    reason: str
    health: HealthInfo
    epoch: int = 0
    break_duration: float | None = None
    half_open_attempts: int = 0
    failure_type: str | None = None
    context: ResilienceContext | None = None

    @property
    def manual(self) -> bool:
        return self.reason == "manual"


StateListener = Callable[[CircuitState, CircuitState, CircuitStateChange], None]
"""``listener(old_state, new_state, change)``, for health and telemetry integrations."""

ChangeCallback = Callable[[CircuitStateChange], object]


class EventSink(Protocol):
    """Where a controller reports transitions; ``active`` False means nobody listens."""

    @property
    def active(self) -> bool: ...
    def publish(self, change: CircuitStateChange) -> None: ...


_EVENTS = {
    CircuitState.OPEN: ("circuit_opened", Severity.ERROR),
    CircuitState.ISOLATED: ("circuit_opened", Severity.ERROR),
    CircuitState.HALF_OPEN: ("circuit_half_opened", Severity.WARNING),
    CircuitState.CLOSED: ("circuit_closed", Severity.INFO),
}


class StateEvents:
    """Ordered, non-concurrent delivery: telemetry, then the ``on_*`` callback, then listeners."""

    __slots__ = ("_busy", "_callbacks", "_listeners", "_queue", "_telemetry", "active")

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        on_opened: ChangeCallback | None = None,
        on_closed: ChangeCallback | None = None,
        on_half_opened: ChangeCallback | None = None,
    ) -> None:
        self._telemetry = telemetry
        # Never changed once made: per-key breakers share it (see ``keyed_copy``).
        self._callbacks = {
            CircuitState.OPEN: on_opened,
            CircuitState.ISOLATED: on_opened,
            CircuitState.CLOSED: on_closed,
            CircuitState.HALF_OPEN: on_half_opened,
        }
        # A tuple replaced on change (listeners are rare): an empty one is shared, no list
        # per breaker.
        self._listeners: tuple[StateListener, ...] = ()
        # Changes published while one is being delivered (rare, short): made on first use.
        self._queue: list[CircuitStateChange] | None = None
        self._busy = False
        self.active = False
        self._refresh()

    def keyed_copy(self, telemetry: Telemetry) -> StateEvents:
        """The same callbacks for another breaker (a per-key pipeline's), no listeners yet."""
        copy = StateEvents.__new__(StateEvents)
        copy._telemetry = telemetry
        copy._callbacks = self._callbacks
        copy._listeners = ()
        copy._queue = None
        copy._busy = False
        copy.active = False
        copy._refresh()
        return copy

    def _refresh(self) -> None:
        # Decided when something changes, not per transition: nobody listening -> no events.
        callbacks = any(cb is not None for cb in self._callbacks.values())
        self.active = self._telemetry.enabled or callbacks or bool(self._listeners)

    def add_listener(self, listener: StateListener) -> Callable[[], None]:
        """Register ``listener(old, new, change)``; returns a function that removes it."""
        if not callable(listener):
            raise TypeError("state listener must be callable")
        self._listeners = (*self._listeners, listener)
        self._refresh()

        def remove() -> None:
            listeners = list(self._listeners)
            if listener in listeners:
                listeners.remove(listener)
                self._listeners = tuple(listeners)
                self._refresh()

        return remove

    def publish(self, change: CircuitStateChange) -> None:
        if not self.active:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = []
        queue.append(change)
        if self._busy:
            return  # delivered by the loop already running, after the current change
        self._busy = True
        try:
            while queue:
                self._deliver(queue.pop(0))
        finally:
            self._busy = False

    def _deliver(self, change: CircuitStateChange) -> None:
        telemetry = self._telemetry
        if telemetry.enabled:
            name, severity = _EVENTS[change.new_state]
            health = change.health
            context = change.context
            telemetry.emit(
                name,
                severity,
                context.operation_key if context is not None else "",
                state=str(change.new_state),
                previous_state=str(change.old_state),
                reason=change.reason,
                retry_after=change.break_duration,
                failure_ratio=health.failure_ratio,
                throughput=health.throughput,
                error_type=change.failure_type,
                manual=change.manual,
            )
        callback = self._callbacks[change.new_state]
        if callback is not None:
            with contextlib.suppress(Exception):  # never break the call that changed state
                callback(change)
        for listener in self._listeners:
            try:
                listener(change.old_state, change.new_state, change)
            except Exception:
                continue
