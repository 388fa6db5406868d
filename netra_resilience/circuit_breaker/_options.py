"""``CircuitBreakerOptions``: thresholds, window, break timing, callbacks; validated once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    duration,
    integer,
    optional_duration,
    ratio,
    set_field,
    to_seconds,
)

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._control import CircuitBreakerControl
    from netra_resilience.circuit_breaker._events import ChangeCallback
    from netra_resilience.circuit_breaker._state import CircuitBreakerStateProvider
    from netra_resilience.circuit_breaker._store import CircuitPolicy, CircuitStateStore
    from netra_resilience.context import ResilienceContext
    from netra_resilience.strategy import BuildContext, Strategy

_OWNER = "CircuitBreakerOptions"


@dataclass(frozen=True, slots=True)
class BreakDurationArgs:
    """What a ``break_duration_generator`` sees when the circuit opens.

    ``half_open_attempts`` counts the half-open trials since the circuit last closed (0 on the
    first break), so ``lambda a: min(2 ** a.half_open_attempts * 5, 300)`` backs off.
    """

    failure_ratio: float
    failure_count: int
    half_open_attempts: int
    context: ResilienceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreakerOptions:
    """Open the circuit when too many recent calls fail (or are slow); probe before closing.

    * Trips when, on a handled failure while closed, ``failures / throughput >=
      failure_ratio`` and ``throughput >= minimum_throughput`` (a count window uses
      ``min(minimum_throughput, window_size)``); or, with ``slow_call_duration`` set, when
      slow calls (duration ``>`` it, successes included) reach ``slow_call_ratio``.
    * ``window="time"``: the last ``sampling_duration`` seconds in 10 rolling buckets;
      ``window="count"``: the last ``window_size`` calls.
    * The break lasts ``break_duration``, or ``break_duration_generator(args)``; an upstream
      ``Retry-After`` on the breaking outcome (read by ``retry_after``) lengthens it, and
      everything is capped at ``max_break_duration``.
    * After the break, ``permitted_calls_in_half_open`` probes run; others are rejected. A
      probe cancelled or still running after ``half_open_max_wait`` (default:
      ``break_duration``) re-opens the circuit, so it never wedges half-open.
    * ``store=None`` keeps state in process (fastest); a :class:`CircuitStateStore` shares it.
    """

    failure_ratio: float = 0.5
    minimum_throughput: int = 10
    sampling_duration: Seconds = 30.0
    window: Literal["time", "count"] = "time"
    window_size: int = 100
    slow_call_duration: Seconds | None = None
    slow_call_ratio: float = 1.0
    break_duration: Seconds = 15.0
    break_duration_generator: Callable[[BreakDurationArgs], float] | None = None
    retry_after: RetryAfterHint | None = retry_after_of
    max_break_duration: Seconds = 300.0
    permitted_calls_in_half_open: int = 1
    half_open_max_wait: Seconds | None = None
    should_handle: Callable[[Outcome[Any]], bool] = ANY_EXCEPTION
    on_opened: ChangeCallback | None = None
    on_closed: ChangeCallback | None = None
    on_half_opened: ChangeCallback | None = None
    control: CircuitBreakerControl | None = None
    state_provider: CircuitBreakerStateProvider | None = None
    store: CircuitStateStore | None = None

    def __post_init__(self) -> None:
        from netra_resilience.circuit_breaker._control import CircuitBreakerControl
        from netra_resilience.circuit_breaker._state import CircuitBreakerStateProvider
        from netra_resilience.circuit_breaker._store import CircuitStateStore

        o = _OWNER
        set_field(self, "failure_ratio", ratio(o, "failure_ratio", self.failure_ratio))
        integer(o, "minimum_throughput", self.minimum_throughput, minimum=2)
        sampling = duration(o, "sampling_duration", self.sampling_duration, minimum=0.5)
        if math.isinf(sampling):
            raise InvalidOptionsError(o, "sampling_duration", "must be finite")
        set_field(self, "sampling_duration", sampling)
        if self.window not in ("time", "count"):
            raise InvalidOptionsError(
                o, "window", f"must be 'time' or 'count', got {self.window!r}"
            )
        integer(o, "window_size", self.window_size, minimum=2, maximum=1_000_000)
        slow = optional_duration(o, "slow_call_duration", self.slow_call_duration)
        set_field(self, "slow_call_duration", slow)
        set_field(self, "slow_call_ratio", ratio(o, "slow_call_ratio", self.slow_call_ratio))
        brk = duration(o, "break_duration", self.break_duration)
        if math.isinf(brk):
            raise InvalidOptionsError(o, "break_duration", "must be finite")
        set_field(self, "break_duration", brk)
        callable_or_none(o, "break_duration_generator", self.break_duration_generator)
        callable_or_none(o, "retry_after", self.retry_after)
        cap = duration(o, "max_break_duration", self.max_break_duration)
        if cap < brk:
            raise InvalidOptionsError(
                o, "max_break_duration", f"must be >= break_duration ({brk}), got {cap}"
            )
        set_field(self, "max_break_duration", cap)
        integer(o, "permitted_calls_in_half_open", self.permitted_calls_in_half_open, minimum=1)
        wait = optional_duration(o, "half_open_max_wait", self.half_open_max_wait)
        set_field(self, "half_open_max_wait", wait)
        if not callable(self.should_handle):
            raise InvalidOptionsError(o, "should_handle", "must be callable")
        for name in ("on_opened", "on_closed", "on_half_opened"):
            callable_or_none(o, name, getattr(self, name))
        for name, kind in (
            ("control", CircuitBreakerControl),
            ("state_provider", CircuitBreakerStateProvider),
            ("store", CircuitStateStore),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise InvalidOptionsError(
                    o, name, f"must be a {kind.__name__}, got {type(value).__name__}"
                )

    def policy(self) -> CircuitPolicy:
        """The thresholds as plain data (what a controller or a shared store evaluates)."""
        from netra_resilience.circuit_breaker._store import CircuitPolicy

        brk = to_seconds(self.break_duration)
        wait = self.half_open_max_wait
        return CircuitPolicy(
            failure_ratio=self.failure_ratio,
            minimum_throughput=self.minimum_throughput,
            sampling_duration=to_seconds(self.sampling_duration),
            window=self.window,
            window_size=self.window_size,
            slow_call_ratio=self.slow_call_ratio,
            break_duration=brk,
            permitted_calls_in_half_open=self.permitted_calls_in_half_open,
            half_open_max_wait=brk if wait is None else to_seconds(wait),
        )

    def create_strategy(self, build: BuildContext) -> Strategy:
        if self.store is None:
            from netra_resilience.circuit_breaker._strategy import CircuitBreakerStrategy

            return CircuitBreakerStrategy(self, build)
        from netra_resilience.circuit_breaker._shared import SharedCircuitBreakerStrategy

        return SharedCircuitBreakerStrategy(self, build)
