"""``CircuitBreakerStrategy``: the pipeline step in front of an in-process controller.

The closed-state success path is the product's hot path: a state check, the awaited call,
an epoch check and ``window.add_success()`` (one ``monotonic()`` read, none for a count
window). Failures, probes, rejections, result predicates and slow-call timing branch off it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netra_resilience.circuit_breaker._base import BreakerBase
from netra_resilience.circuit_breaker._controller import CircuitController
from netra_resilience.circuit_breaker._health import HealthInfo
from netra_resilience.circuit_breaker._state import CircuitState
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import Callback

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._options import CircuitBreakerOptions
    from netra_resilience.context import ResilienceContext
    from netra_resilience.strategy import BuildContext

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_ISOLATED = CircuitState.ISOLATED


class CircuitBreakerStrategy(BreakerBase):
    """Fails fast while a dependency is failing; see :class:`CircuitBreakerOptions`."""

    __slots__ = ("_add_success", "_ctl", "_plain")

    def __init__(self, options: CircuitBreakerOptions, build: BuildContext) -> None:
        super().__init__(options, build)
        ctl = CircuitController(
            options.policy(),
            self._events,
            monotonic=self._now,
            dependency=build.name,
            break_fn=self._timing.duration,
            isolated=self._start_isolated,
        )
        self._ctl = ctl
        self._add_success = ctl.window.add_success
        # Plain: a success needs neither a predicate call nor slow-call timing.
        self._plain = self._exceptions_only and self._slow is None
        if options.state_provider is not None:
            options.state_provider._bind(self)

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        ctl = self._ctl
        if ctl.state is _CLOSED:
            # CancelledError while closed is not recorded at all: no try/finally needed.
            epoch = ctl.epoch
            if self._plain:
                outcome = await callback(context, state)
                if outcome.exception is None and epoch == ctl.epoch:
                    self._add_success()
                else:
                    failed = self._failed(outcome)
                    ctl.record(epoch, self._now(), failed, False, context=context, outcome=outcome)
                return outcome
            slow_after = self._slow
            start = self._now() if slow_after is not None else 0.0
            outcome = await callback(context, state)
            end = self._now()  # shared by slow-call timing and the window
            slow = slow_after is not None and end - start > slow_after
            failed = (outcome.exception is not None or not self._exceptions_only) and self._failed(
                outcome
            )
            if failed or slow or epoch != ctl.epoch:
                ctl.record(epoch, end, failed, slow, context=context, outcome=outcome)
            else:
                ctl.window.add(end, False, False)
            return outcome
        if ctl.state is _OPEN:
            now = self._now()
            if now < ctl.blocked_until:
                return self._reject(ctl.blocked_until - now, False, context)
        return await self._guarded(callback, context, state)

    async def _guarded(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        """Not closed: admit a half-open probe, or reject."""
        ctl = self._ctl
        start = self._now()
        epoch = ctl.acquire(start, context)
        if epoch < 0:
            return self._reject(ctl.retry_after(start), ctl.state is _ISOLATED, context)
        finished = False
        try:
            outcome = await callback(context, state)
            finished = True
        finally:
            if not finished:  # cancelled: the probe slot must not stay taken
                ctl.abandon(epoch, self._now(), context)
        end = self._now()
        slow = self._slow is not None and end - start > self._slow
        ctl.record(epoch, end, self._failed(outcome), slow, context=context, outcome=outcome)
        return outcome

    # -- inspection and manual control -------------------------------------------------
    @property
    def state(self) -> CircuitState:
        """The state now; an elapsed break half-opens when read (Polly), with its event."""
        return self._ctl.advance(self._now())

    @property
    def closed(self) -> bool:
        """Closed right now, read without a clock or a lazy transition (cheap: for routing)."""
        return self._ctl.state is _CLOSED

    @property
    def retry_after(self) -> float | None:
        """Seconds until a call may be admitted; ``None`` if admitted now or isolated."""
        return self._ctl.retry_after(self._now())

    @property
    def health(self) -> HealthInfo:
        return self._ctl.window.health(self._now())

    @property
    def last_failure_type(self) -> str | None:
        """Type name of the outcome that last opened the circuit (never its message)."""
        return self._ctl.last_failure_type

    async def isolate(self) -> None:
        """Reject every call with :class:`IsolatedCircuitError` until :meth:`close`."""
        self._ctl.isolate(self._now())

    async def close(self) -> None:
        """Close the circuit and reset its counts."""
        self._ctl.close(self._now())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, state={self._ctl.state.value})"
