"""What every breaker strategy shares: build-time decisions, rejection, events, identity."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from netra_resilience.circuit_breaker._break import BreakTiming
from netra_resilience.circuit_breaker._events import StateEvents, StateListener
from netra_resilience.exceptions import BrokenCircuitError, IsolatedCircuitError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION, TRANSIENT_EXCEPTION
from netra_resilience.strategy import Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import to_seconds

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._options import CircuitBreakerOptions
    from netra_resilience.context import ResilienceContext
    from netra_resilience.strategy import BuildContext

_REASON = "circuit_open"


class BreakerBase(Strategy):
    """Decides once, at build time, what a breaker needs: telemetry, listeners, predicate
    calls on successes, slow-call timing. Nothing is re-checked per call."""

    __slots__ = (
        "__weakref__", "_events", "_exceptions_only", "_isolated_message", "_name", "_now",
        "_open_message", "_should_handle", "_slow", "_start_isolated", "_telemetry", "_timing",
    )  # fmt: skip

    kind: ClassVar[str] = "circuit_breaker"
    may_block: ClassVar[bool] = False  # never waits: a timeout's deadline fusion may skip it

    def __init__(self, options: CircuitBreakerOptions, build: BuildContext) -> None:
        self._name = build.name
        self._now: Callable[[], float] = build.clock.monotonic
        self._telemetry = build.telemetry("circuit_breaker")
        self._events = StateEvents(
            self._telemetry,
            on_opened=options.on_opened,
            on_closed=options.on_closed,
            on_half_opened=options.on_half_opened,
        )
        self._timing = BreakTiming(options)
        slow = options.slow_call_duration
        self._slow = None if slow is None else to_seconds(slow)
        self._should_handle = options.should_handle
        # The stock exception predicates never handle a success: skip calling them for one.
        self._exceptions_only = options.should_handle in (ANY_EXCEPTION, TRANSIENT_EXCEPTION)
        self._open_message = f"circuit {build.name!r} is open"
        self._isolated_message = f"circuit {build.name!r} is isolated"
        control = options.control
        self._start_isolated = control is not None and control._register(self)

    def _failed(self, outcome: Outcome[Any]) -> bool:
        try:
            return bool(self._should_handle(outcome))
        except Exception:  # a broken predicate must not break the call, nor trip the breaker
            return False

    def _reject(
        self, retry_after: float | None, isolated: bool, context: ResilienceContext
    ) -> Outcome[Any]:
        # A fresh exception per rejection, returned (not raised) here: no traceback grows.
        if isolated:
            exc: BrokenCircuitError = IsolatedCircuitError(
                self._isolated_message, dependency=self._name
            )
        else:
            exc = BrokenCircuitError(
                self._open_message, retry_after=retry_after, dependency=self._name
            )
        context.degradation.mark(self._name, _REASON)
        if self._telemetry.enabled:
            self._telemetry.emit(
                "circuit_rejected",
                Severity.DEBUG,
                context.operation_key,
                state="isolated" if isolated else "open",
                retry_after=retry_after,
            )
        return Outcome(None, exc)

    @property
    def name(self) -> str:
        """The dependency (pipeline) name this breaker guards."""
        return self._name

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(old, new, change)`` on every transition; returns an unsubscribe.

        Listeners run synchronously, in order, never concurrently; their errors are swallowed.
        """
        return self._events.add_listener(listener)

    @abstractmethod
    async def isolate(self) -> None:
        """Reject every call with ``IsolatedCircuitError`` until :meth:`close`."""

    @abstractmethod
    async def close(self) -> None:
        """Close the circuit and reset its counts."""
