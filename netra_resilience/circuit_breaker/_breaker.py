"""The circuit breaker: options, the state machine over a health window, state events,
manual control, and the strategy over a local or shared state store.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from netra_resilience.circuit_breaker._windows import (
        EMPTY_HEALTH,
        CountWindow,
        HealthInfo,
        time_window,
)
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import (
        BrokenCircuitError,
        InvalidOptionsError,
        IsolatedCircuitError,
)
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION, TRANSIENT_EXCEPTION
from netra_resilience.strategy import Callback, Strategy
from netra_resilience.telemetry import Severity, Telemetry
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
        from netra_resilience.context import ResilienceContext
        from netra_resilience.strategy import BuildContext, Callback, Strategy


class CircuitState(StrEnum):
    """Where a breaker stands.

    ``ISOLATED`` is set by hand (:class:`CircuitBreakerControl` or ``strategy.isolate()``) and
    only a manual close leaves it; the other three are driven by call outcomes.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    ISOLATED = "isolated"


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


@dataclass(frozen=True, slots=True)
class CircuitStateChange:
    """One transition, as the callbacks, listeners and a store report it.

    ``reason`` says why: ``failure_ratio``, ``slow_call_ratio``, ``probe_failed``,
    ``probe_slow``, ``probe_abandoned`` (cancelled or past ``half_open_max_wait``),
    ``break_elapsed``, ``probes_succeeded`` or ``manual``. ``failure_type`` is the type name of
    the outcome that opened the circuit, never its message (messages can carry secrets).
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
        self._callbacks = {
            CircuitState.OPEN: on_opened,
            CircuitState.ISOLATED: on_opened,
            CircuitState.CLOSED: on_closed,
            CircuitState.HALF_OPEN: on_half_opened,
        }
        self._listeners: list[StateListener] = []
        self._queue: deque[CircuitStateChange] = deque()
        self._busy = False
        self.active = False
        self._refresh()

    def _refresh(self) -> None:
        # Decided when something changes, not per transition: nobody listening -> no events.
        callbacks = any(cb is not None for cb in self._callbacks.values())
        self.active = self._telemetry.enabled or callbacks or bool(self._listeners)

    def add_listener(self, listener: StateListener) -> Callable[[], None]:
        """Register ``listener(old, new, change)``; returns a function that removes it."""
        if not callable(listener):
            raise TypeError("state listener must be callable")
        self._listeners.append(listener)
        self._refresh()

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
                self._refresh()

        return remove

    def publish(self, change: CircuitStateChange) -> None:
        if not self.active:
            return
        self._queue.append(change)
        if self._busy:
            return  # delivered by the loop already running, after the current change
        self._busy = True
        try:
            while self._queue:
                self._deliver(self._queue.popleft())
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
        for listener in tuple(self._listeners):
            try:
                listener(change.old_state, change.new_state, change)
            except Exception:
                continue


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

            return CircuitBreakerStrategy(self, build)

        return SharedCircuitBreakerStrategy(self, build)


class BreakTiming:
    """``duration(args, outcome)``: the break for the outcome that opened the circuit.

    ``break_duration_generator(args)`` replaces the static duration; a generator that raises or
    answers nonsense (negative, NaN, not a number) falls back to the static one rather than
    breaking the call that tripped. An upstream ``Retry-After`` on the breaking outcome
    lengthens the break (a server that says "come back in 60 s" is not probed after 15 s).
    ``max_break_duration`` caps all of it, so a hostile hint cannot park the breaker.
    """

    __slots__ = ("_cap", "_generator", "_hint", "_static")

    def __init__(self, options: CircuitBreakerOptions) -> None:
        self._static = to_seconds(options.break_duration)
        self._cap = to_seconds(options.max_break_duration)
        self._generator: Callable[[BreakDurationArgs], float] | None = (
            options.break_duration_generator
        )
        self._hint: RetryAfterHint | None = options.retry_after

    def generated(self, args: BreakDurationArgs) -> float:
        generator = self._generator
        if generator is None:
            return self._static
        try:
            value = generator(args)
            seconds = to_seconds(value)
        except Exception:
            return self._static
        if math.isnan(seconds) or seconds < 0:
            return self._static
        return min(seconds, self._cap)

    def hinted(self, seconds: float, outcome: Outcome[Any] | None) -> float:
        hint = self._hint
        if hint is None or outcome is None:
            return seconds
        try:
            upstream = hint(outcome)
            if upstream is None or not upstream > seconds:  # NaN compares False: ignored
                return seconds
            return min(float(upstream), self._cap)
        except Exception:  # a broken hint function must not break the call that tripped
            return seconds

    @property
    def has_generator(self) -> bool:
        return self._generator is not None

    def static_for(self, outcome: Outcome[Any] | None) -> float:
        """The break before any generator runs (what a shared store is told up front)."""
        return self.hinted(self._static, outcome)

    def duration(self, args: BreakDurationArgs, outcome: Outcome[Any] | None) -> float:
        return self.hinted(self.generated(args), outcome)


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
ISOLATED = CircuitState.ISOLATED

BreakFn = Callable[[BreakDurationArgs, "Outcome[Any] | None"], float]


class CircuitCore:
    """State, window, probe counters and break timing of one breaker."""

    __slots__ = (
        "_break_fn", "_events", "_max_wait", "_min_throughput", "_permitted", "_ratio",
        "_slow_ratio", "blocked_until", "break_duration", "dependency", "epoch",
        "half_open_attempts", "half_open_deadline", "last_failure_type", "opened_at", "policy",
        "probe_failures", "probe_slow", "probes_admitted", "probes_done", "state", "window",
    )  # fmt: skip

    def __init__(
        self,
        policy: CircuitPolicy,
        events: EventSink,
        *,
        monotonic: Callable[[], float],
        dependency: str = "",
        break_fn: BreakFn | None = None,
        isolated: bool = False,
    ) -> None:
        self.policy = policy
        self.dependency = dependency
        self._events = events
        self._break_fn = break_fn or (lambda _args, _outcome: policy.break_duration)
        self._ratio = policy.failure_ratio
        self._slow_ratio = policy.slow_call_ratio
        self._min_throughput = policy.effective_minimum_throughput
        self._permitted = policy.permitted_calls_in_half_open
        self._max_wait = policy.half_open_max_wait
        self.window = (
            time_window(policy.sampling_duration, monotonic)
            if policy.window == "time"
            else CountWindow(policy.window_size)
        )
        self.state = ISOLATED if isolated else CLOSED
        self.epoch = 0
        self.blocked_until = math.inf if isolated else 0.0
        self.opened_at = self.break_duration = self.half_open_deadline = 0.0
        self.half_open_attempts = 0
        self.probes_admitted = self.probes_done = self.probe_failures = self.probe_slow = 0
        self.last_failure_type: str | None = None

    # -- manual control --------------------------------------------------------------
    def isolate(self, now: float, context: ResilienceContext | None = None) -> None:
        if self.state is ISOLATED:
            return
        old = self.state
        self.state = ISOLATED
        self.epoch += 1
        self.blocked_until = math.inf
        self._publish(old, "manual", now, context)

    def close(self, now: float, context: ResilienceContext | None = None) -> None:
        """Close by hand; the counts are reset even when it was closed already."""
        self._close(now, context, "manual")

    def set_break(self, epoch: int, seconds: float) -> bool:
        """Re-time the current break (a generator's answer); ignored if the state moved on."""
        if epoch != self.epoch or self.state is not OPEN:
            return False
        self.break_duration = seconds
        self.blocked_until = self.opened_at + seconds
        return True

    # -- transitions -----------------------------------------------------------------
    def _open(
        self,
        now: float,
        context: ResilienceContext | None,
        reason: str,
        *,
        outcome: Outcome[Any] | None = None,
        health: HealthInfo | None = None,
        duration: float | None = None,
        failure_type: str | None = None,
    ) -> None:
        old = self.state
        if health is None:
            health = self.window.health(now)
        if duration is None:
            args = BreakDurationArgs(
                health.failure_ratio, health.failures, self.half_open_attempts, context
            )
            duration = self._break_fn(args, outcome)
        self.state = OPEN
        self.epoch += 1
        self.opened_at = now
        self.break_duration = duration
        self.blocked_until = now + duration
        if failure_type is not None:
            self.last_failure_type = failure_type
        self._publish(
            old, reason, now, context, duration=duration, failure_type=failure_type, health=health
        )

    def _half_open(self, now: float, context: ResilienceContext | None) -> None:
        self.state = HALF_OPEN
        self.epoch += 1
        self.half_open_attempts += 1
        self.probes_admitted = self.probes_done = self.probe_failures = self.probe_slow = 0
        self.half_open_deadline = now + self._max_wait
        self._publish(OPEN, "break_elapsed", now, context)

    def _close(self, now: float, context: ResilienceContext | None, reason: str) -> None:
        old = self.state
        self.state = CLOSED
        self.epoch += 1
        self.blocked_until = 0.0
        self.half_open_attempts = 0
        self.window.reset(now)
        if old is not CLOSED:
            self._publish(old, reason, now, context)

    def _publish(
        self,
        old: CircuitState,
        reason: str,
        now: float,
        context: ResilienceContext | None,
        *,
        duration: float | None = None,
        failure_type: str | None = None,
        health: HealthInfo | None = None,
    ) -> None:
        events = self._events
        if not events.active:  # nobody listens: build nothing
            return
        events.publish(
            CircuitStateChange(
                self.dependency,
                old,
                self.state,
                reason,
                health if health is not None else self.window.health(now),
                self.epoch,
                duration,
                self.half_open_attempts,
                failure_type,
                context,
            )
        )


def failure_type_of(outcome: Outcome[Any] | None) -> str | None:
    """The type name of a failed outcome, safe for health output (never the message)."""
    if outcome is None:
        return None
    if outcome.exception is not None:
        return type(outcome.exception).__name__
    return f"result:{type(outcome.result).__name__}"


class CircuitController(CircuitCore):
    """One breaker's state machine: ``acquire`` before a call, ``record``/``abandon`` after."""

    __slots__ = ()

    def advance(self, now: float, context: ResilienceContext | None = None) -> CircuitState:
        """Make the lazy transitions due at ``now`` (there are no timers); return the state."""
        if (
            self.state is HALF_OPEN
            and now >= self.half_open_deadline
            and self.probes_done < self.probes_admitted
        ):  # a probe hung past half_open_max_wait: never stay wedged half-open
            self._open(now, context, "probe_abandoned")
        if self.state is OPEN and now >= self.blocked_until:
            self._half_open(now, context)
        return self.state

    def acquire(self, now: float, context: ResilienceContext | None = None) -> int:
        """The epoch an admitted call (or probe) runs in, or ``-1`` when it is rejected."""
        state = self.advance(now, context)
        if state is CLOSED:
            return self.epoch
        if state is HALF_OPEN and self.probes_admitted < self._permitted:
            self.probes_admitted += 1
            return self.epoch
        return -1

    def retry_after(self, now: float) -> float | None:
        """Seconds until a call may be admitted; ``None`` when admitted now or isolated."""
        state = self.state
        if state is OPEN:
            return max(self.blocked_until - now, 0.0)
        if state is HALF_OPEN and self.probes_admitted >= self._permitted:
            return max(self.half_open_deadline - now, 0.0)
        return None

    def snapshot(self, now: float) -> CircuitSnapshot:
        """A side-effect-free read; an elapsed break reads as half-open."""
        state = self.state
        if state is OPEN and now >= self.blocked_until:
            state = HALF_OPEN
        return CircuitSnapshot(
            state, self.retry_after(now), self.window.health(now), self.last_failure_type
        )

    def record(
        self,
        epoch: int,
        now: float,
        failed: bool,
        slow: bool,
        *,
        context: ResilienceContext | None = None,
        outcome: Outcome[Any] | None = None,
        break_duration: float | None = None,
        failure_type: str | None = None,
    ) -> None:
        """Count a call admitted in ``epoch`` and make the transition it causes."""
        if epoch != self.epoch:
            if self.state is not CLOSED:
                self.window.add(now, failed, slow)  # late result: counts only
            return
        if failed and failure_type is None:
            failure_type = failure_type_of(outcome)
        if self.state is CLOSED:
            window = self.window
            window.add(now, failed, slow)
            if not (failed or slow):
                return
            health = window.health(now)
            if health.throughput < self._min_throughput:
                return
            if failed and health.failure_ratio >= self._ratio:
                reason = "failure_ratio"
            elif slow and health.slow_call_ratio >= self._slow_ratio:
                reason = "slow_call_ratio"
            else:
                return
        else:  # a half-open probe: only probes are admitted in HALF_OPEN
            self.probes_done += 1
            self.probe_failures += failed
            self.probe_slow += slow
            permitted = self._permitted
            if self.probe_failures / permitted >= self._ratio:
                reason = "probe_failed"
            elif self.probe_slow / permitted >= self._slow_ratio:
                reason = "probe_slow"
            elif self.probes_done >= permitted:
                self._close(now, context, "probes_succeeded")
                return
            else:
                return
            health = None
        self._open(
            now,
            context,
            reason,
            outcome=outcome,
            health=health,
            duration=break_duration,
            failure_type=failure_type,
        )

    def abandon(
        self,
        epoch: int,
        now: float,
        context: ResilienceContext | None = None,
        *,
        break_duration: float | None = None,
    ) -> None:
        """A call admitted in ``epoch`` never finished (cancelled): a probe re-opens."""
        if epoch == self.epoch and self.state is HALF_OPEN:
            self._open(now, context, "probe_abandoned", duration=break_duration)


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


_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class SharedView:
    __slots__ = ("_blocked_until", "_now", "health", "last_failure_type", "last_state")

    def __init__(self, now: Callable[[], float], state: CircuitState) -> None:
        self._now = now
        self._blocked_until = 0.0
        self.last_state = state
        self.health: HealthInfo = EMPTY_HEALTH
        self.last_failure_type: str | None = None

    def saw(
        self,
        state: CircuitState,
        changes: tuple[CircuitStateChange, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        now = self._now()
        if retry_after is not None:
            self._blocked_until = now + retry_after
        for change in changes:
            self.health = change.health
            if change.new_state is _OPEN and change.break_duration is not None:
                self._blocked_until = now + change.break_duration
            if change.failure_type is not None:
                self.last_failure_type = change.failure_type
        self.last_state = state

    def saw_snapshot(self, snapshot: CircuitSnapshot) -> None:
        self._blocked_until = self._now() + (snapshot.retry_after or 0.0)
        self.last_state = snapshot.state
        self.health = snapshot.health
        self.last_failure_type = snapshot.last_failure_type

    @property
    def state(self) -> CircuitState:
        """The last state seen; an open circuit whose break has elapsed reads half-open."""
        if self.last_state is _OPEN and self._now() >= self._blocked_until:
            return _HALF_OPEN
        return self.last_state

    @property
    def retry_after(self) -> float | None:
        if self.last_state is _OPEN:
            return max(self._blocked_until - self._now(), 0.0)
        return None


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


_CLOSED = CircuitState.CLOSED
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


Changes = tuple[CircuitStateChange, ...]


class SharedCircuitBreakerStrategy(CircuitBreakerStrategy):
    __slots__ = ("_held", "_key", "_policy", "_store", "_view")

    def __init__(self, options: CircuitBreakerOptions, build: BuildContext) -> None:
        BreakerBase.__init__(self, options, build)  # no in-process controller
        # Built while its control is isolated: held isolated here, without a store step,
        # until closed. isolate() isolates the shared circuit for every process.
        self._held = self._start_isolated
        assert options.store is not None
        self._store: CircuitStateStore = options.store
        self._policy = options.policy()
        self._key = f"{build.name}/{build.instance}" if build.instance else build.name
        first = CircuitState.ISOLATED if self._held else CircuitState.CLOSED
        self._view = SharedView(self._now, first)
        if options.state_provider is not None:
            options.state_provider._bind(self)

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        if self._held:
            return self._reject(None, True, context)
        try:
            permit = await self._store.acquire(self._key, self._policy)
            changes = await self._generate(permit.changes, context, None)
        except Exception:
            self._store_failed("acquire", context)
            return await callback(context, state)
        self._saw(permit.state, changes, context, permit.retry_after)
        if not permit.admitted:
            isolated = permit.state is CircuitState.ISOLATED
            return self._reject(permit.retry_after, isolated, context)
        start = self._now()
        finished = False
        try:
            outcome = await callback(context, state)
            finished = True
        finally:
            if not finished and permit.state is CircuitState.HALF_OPEN:
                brk = self._policy.break_duration
                await self._record(permit, CallReport(False, abandoned=True, break_duration=brk))
        slow = self._slow is not None and self._now() - start > self._slow
        if self._failed(outcome):
            brk, failure_type = self._timing.static_for(outcome), failure_type_of(outcome)
            report = CallReport(True, slow, break_duration=brk, failure_type=failure_type)
        else:
            report = CallReport(False, slow, break_duration=self._policy.break_duration)
        await self._record(permit, report, context, outcome)
        return outcome

    async def _record(
        self,
        permit: Permit,
        report: CallReport,
        context: ResilienceContext | None = None,
        outcome: Outcome[Any] | None = None,
    ) -> None:
        try:
            changes = await self._store.record(self._key, self._policy, permit, report)
            changes = await self._generate(changes, context, outcome)
        except Exception:
            self._store_failed("record", context)
            return
        if changes:
            self._saw(changes[-1].new_state, changes, context)

    async def _generate(
        self, changes: Changes, context: ResilienceContext | None, outcome: Outcome[Any] | None
    ) -> Changes:
        """Run ``break_duration_generator`` for each opening; write it back (CAS on epoch)."""
        if not self._timing.has_generator or not changes:
            return changes
        result = []
        for change in changes:
            if change.new_state is CircuitState.OPEN:
                health = change.health
                args = BreakDurationArgs(
                    health.failure_ratio, health.failures, change.half_open_attempts, context
                )
                seconds = self._timing.duration(args, outcome)
                if await self._store.set_break(self._key, change.epoch, seconds):
                    result.append(replace(change, break_duration=seconds))
                    continue
            result.append(change)
        return tuple(result)

    def _saw(
        self,
        state: CircuitState,
        changes: Changes,
        context: ResilienceContext | None,
        retry_after: float | None = None,
    ) -> None:
        self._view.saw(state, changes, retry_after)
        if changes and self._events.active:
            for change in changes:
                self._events.publish(replace(change, dependency=self._name, context=context))

    def _store_failed(self, step: str, context: ResilienceContext | None) -> None:
        if self._telemetry.enabled:
            key = context.operation_key if context is not None else ""
            self._telemetry.emit("circuit_store_error", Severity.WARNING, key, step=step)

    async def refresh(self) -> CircuitSnapshot:
        """Read the shared state from the store (no transition is made)."""
        snapshot = await self._store.snapshot(self._key, self._policy)
        self._view.saw_snapshot(snapshot)
        return snapshot

    @property
    def state(self) -> CircuitState:
        return CircuitState.ISOLATED if self._held else self._view.state

    @property
    def closed(self) -> bool:
        return not self._held and self._view.state is CircuitState.CLOSED

    @property
    def retry_after(self) -> float | None:
        return None if self._held else self._view.retry_after

    @property
    def health(self) -> HealthInfo:
        return self._view.health

    @property
    def last_failure_type(self) -> str | None:
        return self._view.last_failure_type

    async def isolate(self) -> None:
        self._saw(CircuitState.ISOLATED, await self._store.isolate(self._key, self._policy), None)

    async def close(self) -> None:
        self._held = False
        self._saw(CircuitState.CLOSED, await self._store.close(self._key, self._policy), None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, key={self._key!r})"
