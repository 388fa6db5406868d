"""Each endpoint's own circuit breaker: a :class:`CircuitBreakerStrategy` per endpoint.

The pool asks a breaker two things: does it admit a call *now* (closed, or half-open with a
free probe slot) and, when none does, how long until one will (``retry_after``). The call
itself then runs through the breaker's ``execute`` so every breaker semantic (window, break
timing, Retry-After-stretched breaks, half-open probes, cancelled probes re-opening) is the
circuit breaker's own, configured by the same :class:`CircuitBreakerOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState, StateListener
from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback
from netra_resilience.telemetry import TelemetryListener

_CLOSED = CircuitState.CLOSED
_HALF_OPEN = CircuitState.HALF_OPEN


class EndpointBreaker(Protocol):
    """What the pool uses of a breaker strategy (``CircuitBreakerStrategy`` fits)."""

    @property
    def state(self) -> CircuitState: ...
    @property
    def closed(self) -> bool:
        """Closed now, without a clock read (the selection fast path)."""
        ...

    @property
    def retry_after(self) -> float | None: ...
    @property
    def name(self) -> str: ...
    def add_state_listener(self, listener: StateListener) -> Callable[[], None]: ...
    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]: ...
    async def isolate(self) -> None: ...
    async def close(self) -> None: ...


def build_breaker(
    options: CircuitBreakerOptions,
    *,
    name: str,
    clock: Clock,
    random: Callable[[], float],
    listener: TelemetryListener | None,
) -> EndpointBreaker:
    build = BuildContext(name=name, clock=clock, random=random, listener=listener)
    breaker: EndpointBreaker = options.create_strategy(build)  # type: ignore[assignment]
    return breaker


def admits(breaker: EndpointBreaker) -> bool:
    """Closed, or half-open with a probe slot free (reading ``state`` makes lazy transitions)."""
    if breaker.closed:  # the common case, without a clock read
        return True
    state = breaker.state
    return state is _CLOSED or (state is _HALF_OPEN and breaker.retry_after is None)
