"""The breaker's options, and the two objects an application passes in them: a manual
:class:`CircuitBreakerControl` and a :class:`CircuitBreakerStateProvider` for outside reads.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from netra_resilience.circuit_breaker._controller import BreakDurationArgs, CircuitPolicy
from netra_resilience.circuit_breaker._events import ChangeCallback, CircuitState
from netra_resilience.circuit_breaker._store import CircuitStateStore
from netra_resilience.circuit_breaker._strategy import CircuitBreakerStrategy
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.predicates import ANY_EXCEPTION, ShouldHandle, as_predicate
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
    from netra_resilience.circuit_breaker._windows import HealthInfo
    from netra_resilience.strategy import BuildContext, Strategy


class _Readable(Protocol):
    """What a provider reads from the breaker it is bound to (the strategy)."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> CircuitState: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def last_failure_type(self) -> str | None: ...
    @property
    def health(self) -> HealthInfo: ...


class CircuitBreakerStateProvider:
    """Reads one breaker's state from outside its pipeline (health endpoints, dashboards).

    Pass it as ``CircuitBreakerOptions(state_provider=...)``; building the pipeline binds it.
    One provider observes exactly one breaker, so a second binding is refused. Before it is
    bound it reports a closed circuit, which is what a not-yet-built dependency looks like.
    """

    __slots__ = ("_breaker",)

    def __init__(self) -> None:
        self._breaker: _Readable | None = None

    @property
    def is_bound(self) -> bool:
        return self._breaker is not None

    @property
    def state(self) -> CircuitState:
        """The current state; an expired break shows as ``HALF_OPEN`` when read (lazy)."""
        breaker = self._breaker
        return CircuitState.CLOSED if breaker is None else breaker.state

    @property
    def retry_after(self) -> float | None:
        """Seconds until the breaker admits a call again, or ``None`` when it admits now."""
        breaker = self._breaker
        return None if breaker is None else breaker.retry_after

    @property
    def last_failure_type(self) -> str | None:
        """Type name of the outcome that last opened the circuit (never its message)."""
        breaker = self._breaker
        return None if breaker is None else breaker.last_failure_type

    @property
    def health(self) -> HealthInfo | None:
        breaker = self._breaker
        return None if breaker is None else breaker.health

    def _bind(self, breaker: _Readable) -> None:
        if self._breaker is not None:
            raise InvalidOptionsError(
                "CircuitBreakerOptions",
                "state_provider",
                f"is already bound to breaker {self._breaker.name!r}; use one provider per breaker",
            )
        self._breaker = breaker


class _Manual(Protocol):
    async def isolate(self) -> None: ...
    async def close(self) -> None: ...


class CircuitBreakerControl:
    """An application-owned switch for every breaker built with it (Polly's manual control).

    ``await control.isolate()`` puts them all in ``ISOLATED`` (calls fail fast with
    :class:`~netra_resilience.IsolatedCircuitError`) until ``await control.close()``, which
    closes them and resets their counts. A breaker built while the control is isolated starts
    isolated; ``CircuitBreakerControl(isolated=True)`` starts that way (e.g. a maintenance
    window known at startup). Breakers are held weakly: a dropped pipeline is not kept alive.
    """

    __slots__ = ("__weakref__", "_breakers", "_isolated")

    def __init__(self, *, isolated: bool = False) -> None:
        self._isolated = bool(isolated)
        self._breakers: weakref.WeakSet[_Manual] = weakref.WeakSet()

    @property
    def is_isolated(self) -> bool:
        return self._isolated

    def __len__(self) -> int:
        return len(self._breakers)

    def _register(self, breaker: _Manual) -> bool:
        """Called when a breaker is built; returns whether it must start isolated."""
        self._breakers.add(breaker)
        return self._isolated

    async def isolate(self) -> None:
        """Isolate every breaker; new ones start isolated until :meth:`close`."""
        self._isolated = True
        await self._each("isolate")

    async def close(self) -> None:
        """Close every breaker and reset its counts."""
        self._isolated = False
        await self._each("close")

    async def _each(self, action: str) -> None:
        # Every breaker gets the command even if one (say, with an unreachable shared store)
        # fails; the failures are raised together afterwards.
        errors: list[Exception] = []
        for breaker in list(self._breakers):
            try:
                await getattr(breaker, action)()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup(f"CircuitBreakerControl.{action}() failed for some", errors)


_OWNER = "CircuitBreakerOptions"


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
    should_handle: ShouldHandle = ANY_EXCEPTION
    on_opened: ChangeCallback | None = None
    on_closed: ChangeCallback | None = None
    on_half_opened: ChangeCallback | None = None
    control: CircuitBreakerControl | None = None
    state_provider: CircuitBreakerStateProvider | None = None
    store: CircuitStateStore | None = None

    def __post_init__(self) -> None:
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
        set_field(self, "should_handle", as_predicate(o, "should_handle", self.should_handle))
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
        return CircuitBreakerStrategy(self, build)
