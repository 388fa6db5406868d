"""Breaker state shared between breakers (and processes): the :class:`CircuitStateStore`
protocol, its step results, and the in-memory reference store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from netra_resilience.circuit_breaker._controller import (
    CircuitController,
    CircuitPolicy,
    CircuitSnapshot,
)
from netra_resilience.circuit_breaker._events import CircuitState, CircuitStateChange
from netra_resilience.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer to ``acquire``: admitted (as a call or as a half-open probe) or rejected.

    ``retry_after`` (seconds) is set on rejection, except when ``state`` is ``ISOLATED``.
    ``changes`` lists transitions the step made (an expired break half-opening, a hung probe
    re-opening) so the caller can publish them.
    """

    admitted: bool
    state: CircuitState
    epoch: int
    retry_after: float | None = None
    changes: tuple[CircuitStateChange, ...] = ()


@dataclass(frozen=True, slots=True)
class CallReport:
    """How an admitted call ended. ``abandoned``: cancelled or otherwise never finished."""

    failed: bool
    slow: bool = False
    abandoned: bool = False
    break_duration: float = 15.0
    failure_type: str | None = None


@runtime_checkable
class CircuitStateStore(Protocol):
    """Shared breaker state, one record per ``key``. Every method is one atomic step.

    A store that cannot be reached raises; the breaker then lets the call through unrecorded
    (a breaker must not become the outage) and reports ``circuit_store_error`` telemetry.
    """

    async def acquire(self, key: str, policy: CircuitPolicy) -> Permit:
        """Apply due lazy transitions, then admit a call, take a probe slot, or reject."""
        ...

    async def record(
        self, key: str, policy: CircuitPolicy, permit: Permit, report: CallReport
    ) -> tuple[CircuitStateChange, ...]:
        """Count the outcome and make any transition it causes (trip, re-open, close)."""
        ...

    async def set_break(self, key: str, epoch: int, seconds: float) -> bool:
        """Set the open state's break to ``seconds`` from its start if ``epoch`` is current."""
        ...

    async def isolate(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]: ...

    async def close(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        """Close and reset the counts (a manual close)."""
        ...

    async def snapshot(self, key: str, policy: CircuitPolicy) -> CircuitSnapshot:
        """Read without side effects; an open circuit whose break has elapsed reads as
        ``HALF_OPEN`` (the next ``acquire`` makes that transition)."""
        ...


class _Collector:
    """Event sink that keeps a step's transitions so the step can return them."""

    __slots__ = ("changes",)

    active = True

    def __init__(self) -> None:
        self.changes: list[CircuitStateChange] = []

    def publish(self, change: CircuitStateChange) -> None:
        self.changes.append(change)

    def drain(self) -> tuple[CircuitStateChange, ...]:
        changes = tuple(self.changes)
        self.changes.clear()
        return changes


class InMemoryCircuitStateStore:
    """A :class:`CircuitStateStore` in a dict. Steps never await, so each one is atomic.

    Give it the application's clock (tests: a ``FakeClock``). Configuring a store costs the
    protocol path (two awaited steps and a few small objects per call); leave ``store=None``
    when one breaker per pipeline is all you need.
    """

    __slots__ = ("_circuits", "_clock")

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._circuits: dict[str, tuple[CircuitController, _Collector]] = {}

    def _get(self, key: str, policy: CircuitPolicy) -> tuple[CircuitController, _Collector]:
        circuit = self._circuits.get(key)
        if circuit is None:
            sink = _Collector()
            controller = CircuitController(
                policy, sink, monotonic=self._clock.monotonic, dependency=key
            )
            circuit = self._circuits[key] = (controller, sink)
        return circuit

    def __contains__(self, key: object) -> bool:
        return key in self._circuits

    async def acquire(self, key: str, policy: CircuitPolicy) -> Permit:
        controller, sink = self._get(key, policy)
        now = self._clock.monotonic()
        epoch = controller.acquire(now)
        state = controller.state
        if epoch < 0:
            retry_after = None if state is CircuitState.ISOLATED else controller.retry_after(now)
            return Permit(False, state, controller.epoch, retry_after, sink.drain())
        return Permit(True, state, epoch, None, sink.drain())

    async def record(
        self, key: str, policy: CircuitPolicy, permit: Permit, report: CallReport
    ) -> tuple[CircuitStateChange, ...]:
        controller, sink = self._get(key, policy)
        now = self._clock.monotonic()
        if report.abandoned:
            controller.abandon(permit.epoch, now, break_duration=report.break_duration)
        else:
            controller.record(
                permit.epoch,
                now,
                report.failed,
                report.slow,
                break_duration=report.break_duration,
                failure_type=report.failure_type,
            )
        return sink.drain()

    async def set_break(self, key: str, epoch: int, seconds: float) -> bool:
        circuit = self._circuits.get(key)
        return circuit is not None and circuit[0].set_break(epoch, seconds)

    async def isolate(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        controller, sink = self._get(key, policy)
        controller.isolate(self._clock.monotonic())
        return sink.drain()

    async def close(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        controller, sink = self._get(key, policy)
        controller.close(self._clock.monotonic())
        return sink.drain()

    async def snapshot(self, key: str, policy: CircuitPolicy) -> CircuitSnapshot:
        controller, _ = self._get(key, policy)
        return controller.snapshot(self._clock.monotonic())
