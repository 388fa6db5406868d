"""``CircuitStateStore``: where breaker state lives when it is shared beyond one breaker.

Decision. The default (``store=None``) keeps the state in a private in-process controller
that the strategy calls directly and synchronously: no ``await``, no lookup, no allocation on
a success. A store is consulted only when one is configured. Then every call makes two
store steps (``acquire`` before, ``record`` after), each of which must be *atomic*, so a
Redis implementation runs each as one Lua script and every process sees one breaker:

* shared state (closed / open / half-open / isolated) and ``blocked_until``;
* shared window counts (time buckets or a count ring), evaluated inside the same step that
  records, so two processes can never both miss the trip;
* global half-open probe slots: ``acquire`` hands out at most
  ``permitted_calls_in_half_open`` probes across all processes;
* an ``epoch`` that increases on every transition. Permits carry it, so a result from an
  earlier state is recognised as late and only counted (Polly's late-result rule).

Time: the store owns its clock (Redis ``TIME``; the in-memory store an injected
:class:`~netra_resilience.clock.Clock`). Only relative durations cross the protocol, never
monotonic timestamps, which mean nothing in another process.

Break duration: ``record`` carries the duration to apply if this record opens the circuit
(static, or stretched by an upstream ``Retry-After``). A ``break_duration_generator`` runs in
the caller after the step, with the returned change, and its result is written back with
``set_break``, compare-and-set on the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from netra_resilience.circuit_breaker._events import CircuitStateChange
from netra_resilience.circuit_breaker._health import HealthInfo
from netra_resilience.circuit_breaker._state import CircuitState


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """The breaker's thresholds, as plain data a store (or a Lua script) can evaluate."""

    failure_ratio: float = 0.5
    minimum_throughput: int = 10
    sampling_duration: float = 30.0
    window: Literal["time", "count"] = "time"
    window_size: int = 100
    slow_call_ratio: float = 1.0
    break_duration: float = 15.0
    permitted_calls_in_half_open: int = 1
    half_open_max_wait: float = 15.0

    @property
    def effective_minimum_throughput(self) -> int:
        """A count window can never hold more than ``window_size`` calls (resilience4j)."""
        if self.window == "count":
            return min(self.minimum_throughput, self.window_size)
        return self.minimum_throughput


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


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    state: CircuitState
    retry_after: float | None
    health: HealthInfo
    last_failure_type: str | None = None


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
