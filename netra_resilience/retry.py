"""Retry: backoff with jitter, server-hinted delays, deadline awareness; never retries a
rejection or a cancellation, nor an attempt the declared effect forbids repeating.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, cast

from netra_resilience.admission import RetryBudget
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.effects import repeat_allowed
from netra_resilience.exceptions import (
        ExecutionRejectedError,
        InvalidOptionsError,
        TimeoutRejectedError,
)
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import (
    TRANSIENT_EXCEPTION,
    OutcomePredicate,
    ShouldHandle,
    as_predicate,
)
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.timeout import DEADLINE, Budget
from netra_resilience.validation import (
        Seconds,
        callable_or_none,
        duration,
        integer,
        set_field,
        to_seconds,
)

if TYPE_CHECKING:
        from netra_resilience.strategy import BuildContext
        from netra_resilience.timeout import TimeoutStrategy


@dataclass(frozen=True, slots=True)
class RetryDelayArgs:
    """Input of ``delay_generator``.

    ``attempt`` is the zero-based attempt that just failed; ``delay`` the backoff the retry
    would use; ``retry_after`` the server hint read from the outcome (``None`` if none).
    """

    attempt: int
    outcome: Outcome[Any]
    context: ResilienceContext
    delay: float
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class OnRetryArgs:
    """Input of ``on_retry``, called before the retry sleeps.

    ``attempt`` is the zero-based attempt that just failed, ``delay`` the sleep that follows,
    ``duration`` how long that attempt took (seconds, by the pipeline's clock).
    """

    attempt: int
    delay: float
    duration: float
    outcome: Outcome[Any]
    context: ResilienceContext


async def close_discarded(outcome: Outcome[Any]) -> None:
    """Close ``outcome.result`` before it is dropped, so an HTTP response frees its connection.

    ``aclose()`` wins over ``close()``; either may return an awaitable. Errors from closing
    are swallowed: a result we are throwing away must not fail the call. A cancel while
    awaiting ``aclose()`` still propagates.
    """
    if outcome.exception is not None or outcome.result is None:
        return
    result = outcome.result
    with suppress(Exception):
        closer = getattr(result, "aclose", None)
        if not callable(closer):
            closer = getattr(result, "close", None)
            if not callable(closer):
                return
        value = closer()
        if inspect.isawaitable(value):
            await value


class AttemptFuture:
    """The part of ``tenacity.Future`` that ``wait_exception`` and friends read."""

    __slots__ = ("_outcome", "attempt_number")

    def __init__(self, outcome: Outcome[Any], attempt_number: int) -> None:
        self._outcome = outcome
        self.attempt_number = attempt_number

    @property
    def failed(self) -> bool:
        return self._outcome.exception is not None

    def exception(self) -> BaseException | None:
        return self._outcome.exception

    def result(self) -> Any:
        return self._outcome.unwrap()


class RetryCallState:
    """Duck-typed ``tenacity.RetryCallState``: attempt numbers are one-based, as there."""

    __slots__ = (
        "args",
        "attempt_number",
        "fn",
        "idle_for",
        "kwargs",
        "next_action",
        "outcome",
        "outcome_timestamp",
        "retry_object",
        "start_time",
        "upcoming_sleep",
    )

    def __init__(
        self,
        *,
        attempt_number: int,
        outcome: Outcome[Any],
        start_time: float,
        outcome_timestamp: float,
        idle_for: float,
        state: Any,
    ) -> None:
        self.attempt_number = attempt_number
        self.outcome = AttemptFuture(outcome, attempt_number)
        self.start_time = start_time
        self.outcome_timestamp = outcome_timestamp
        self.idle_for = idle_for
        self.upcoming_sleep = 0.0
        self.next_action = None
        self.retry_object = None
        if isinstance(state, tuple) and len(state) == 3:
            self.fn, self.args, self.kwargs = state
        else:
            self.fn, self.args, self.kwargs = None, (), {}

    @property
    def seconds_since_start(self) -> float:
        return self.outcome_timestamp - self.start_time


_JITTER_FACTOR = 0.5
_EXPONENTIAL_FACTOR = 2.0
# Decorrelated jitter v2 constants (Polly): PFactor smooths the first delay; the scaling factor
# puts the median delays near d, 2d, 4d, ... instead of 1.4d, 2.8d, 5.6d, ...
_P_FACTOR = 4.0
_RP_SCALING_FACTOR = 1 / 1.4


class Backoff(StrEnum):
    """How the delay grows between retries."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


def _apply_jitter(delay: float, random: Callable[[], float]) -> float:
    offset = delay * _JITTER_FACTOR / 2
    return delay + (delay * _JITTER_FACTOR * random() - offset)


def _decorrelated_jitter(
    attempt: int, base_delay: float, previous: float, random: Callable[[], float]
) -> tuple[float, float]:
    t = attempt + random()
    try:
        following = math.pow(_EXPONENTIAL_FACTOR, t) * math.tanh(math.sqrt(_P_FACTOR * t))
    except OverflowError:  # t >= 1024 (Polly issue #2163): saturate instead of going negative
        return math.inf, math.inf
    if math.isinf(following):
        return math.inf, following
    return (following - previous) * _RP_SCALING_FACTOR * base_delay, following


def compute_delay(
    backoff: Backoff | str,
    attempt: int,
    base_delay: float,
    *,
    use_jitter: bool,
    random: Callable[[], float],
    previous_state: float = 0.0,
    max_delay: float | None = None,
) -> tuple[float, float]:
    """Return ``(delay, state)`` for the retry after zero-based ``attempt``.

    ``state`` is only meaningful for exponential backoff with jitter; pass it back as
    ``previous_state`` on the next call of the same execution. A ``base_delay`` of zero means
    no delay at all (and consumes no randomness), as in Polly.
    """
    kind = Backoff(backoff)  # also rejects an unknown name with ValueError
    if base_delay == 0:
        return 0.0, previous_state
    state = previous_state
    try:
        if kind is Backoff.CONSTANT:
            delay = _apply_jitter(base_delay, random) if use_jitter else base_delay
        elif kind is Backoff.LINEAR:
            delay = base_delay * (attempt + 1)
            if use_jitter:
                delay = _apply_jitter(delay, random)
        elif use_jitter:
            delay, state = _decorrelated_jitter(attempt, base_delay, previous_state, random)
        else:
            delay = math.pow(_EXPONENTIAL_FACTOR, attempt) * base_delay
    except OverflowError:
        delay = math.inf
    if max_delay is not None and delay > max_delay:
        delay = max_delay
    return max(delay, 0.0), state


_OWNER = "RetryOptions"
_DEFAULT_MAX_ATTEMPTS = 3

DelayValue = float | timedelta | None
DelayGenerator = Callable[[RetryDelayArgs], "DelayValue | Awaitable[DelayValue]"]
OnRetry = Callable[[OnRetryArgs], "Awaitable[Any] | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOptions:
    """Retry handled outcomes with backoff.

    * ``max_attempts``: total attempts *including the first* (stamina/resilience4j; Polly
      counts retries only). ``1`` disables retrying.
    * ``backoff``, ``delay``, ``use_jitter``: the computed delay (see
      :mod:`netra_resilience.retry`); ``max_delay`` clamps computed delays only.
    * ``should_handle``: which outcomes to retry (default: exceptions except rejections, but
      timeouts). Whatever it says, ``CancelledError`` (any non-``Exception``) and rejections
      other than :class:`TimeoutRejectedError` (an open breaker, a full bulkhead, a rate limit)
      are **never** retried: retrying them only spins against the component that said no.
      Nor is an attempt of ``unsafe`` work (:func:`~netra_resilience.effects.effect_scope`)
      that may have reached the upstream: see :func:`~netra_resilience.effects.repeat_allowed`.
    * ``retry_after``: reads a server hint from the outcome; when present it replaces the
      computed delay. ``None`` ignores hints.
    * ``delay_generator(RetryDelayArgs)``: sync or async; a number (or ``timedelta``) replaces
      the delay, ``None`` or a negative value falls back (to the hint, else the computed delay).
    * ``max_server_delay``: a hinted or generated delay above it means *give up*: the last
      outcome is returned without further attempts (openai's 120 s rule).
    * ``stop`` / ``wait``: tenacity ``stop_*`` / ``wait_*`` objects as an alternative
      vocabulary. ``stop`` replaces ``max_attempts`` (so give one or the other); ``wait``
      replaces ``backoff``/``delay``/``max_delay``/``use_jitter``. Hints still win over it.
    * ``on_retry(OnRetryArgs)``: sync or async, called before each sleep.
    * ``budget``: a :class:`~netra_resilience.admission.RetryBudget` shared by every pipeline
      calling the same dependency; each call deposits, each retry spends, and a retry the
      budget denies ends the call with its last outcome, marked ``retry_budget`` and counted
      in ``budget.denied`` (so retries cannot multiply load when the upstream is failing).

    A callback that raises (predicate, hint, generator, stop, wait, on_retry) ends the call
    with that exception, as in Polly.
    """

    max_attempts: int = _DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = Backoff.EXPONENTIAL
    delay: Seconds = 1.0
    max_delay: Seconds = 30.0
    use_jitter: bool = True
    should_handle: ShouldHandle = TRANSIENT_EXCEPTION
    delay_generator: DelayGenerator | None = None
    retry_after: RetryAfterHint | None = retry_after_of
    max_server_delay: Seconds = 120.0
    stop: Callable[[Any], bool] | None = None
    wait: Callable[[Any], float] | None = None
    on_retry: OnRetry | None = None
    budget: RetryBudget | None = None

    def __post_init__(self) -> None:
        integer(_OWNER, "max_attempts", self.max_attempts)
        if self.stop is not None and self.max_attempts != _DEFAULT_MAX_ATTEMPTS:
            raise InvalidOptionsError(
                _OWNER, "stop", "replaces max_attempts: give one of them, not both"
            )
        try:
            set_field(self, "backoff", Backoff(self.backoff))
        except ValueError:
            allowed = ", ".join(b.value for b in Backoff)
            raise InvalidOptionsError(
                _OWNER, "backoff", f"must be one of {allowed}, got {self.backoff!r}"
            ) from None
        delay = duration(_OWNER, "delay", self.delay, allow_zero=True)
        if math.isinf(delay):
            raise InvalidOptionsError(_OWNER, "delay", "must be finite")
        set_field(self, "delay", delay)
        set_field(self, "max_delay", duration(_OWNER, "max_delay", self.max_delay))
        set_field(
            self, "max_server_delay", duration(_OWNER, "max_server_delay", self.max_server_delay)
        )
        if not isinstance(self.use_jitter, bool):
            raise InvalidOptionsError(
                _OWNER, "use_jitter", f"must be a bool, got {self.use_jitter!r}"
            )
        set_field(self, "should_handle", as_predicate(_OWNER, "should_handle", self.should_handle))
        for name in ("delay_generator", "retry_after", "stop", "wait", "on_retry"):
            callable_or_none(_OWNER, name, getattr(self, name))
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise InvalidOptionsError(_OWNER, "budget", "must be a RetryBudget")

    def create_strategy(self, build: BuildContext) -> RetryStrategy:

        return RetryStrategy(self, build)


def is_async(fn: object) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (decided at build time)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def _explicit(value: Any) -> float | None:
    """A hint or generated delay: ``None``, negative or NaN means "none given"."""
    if value is None:
        return None
    seconds = to_seconds(value)
    return seconds if seconds >= 0 else None  # NaN fails the comparison too


class GiveUp(Exception):  # control flow inside the retry, never escapes it
    """No further attempt: ``reason`` is ``max_attempts``, ``server_delay`` or ``stop``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class DelayPolicy:
    """Decides the sleep before the next attempt, in this order (Polly + openai rules):

    1. ``max_attempts`` reached (or, with tenacity vocabulary, ``stop`` says so after 2-4)
       -> give up;
    2. the computed delay: ``wait(state)`` if given, else the backoff, clamped by ``max_delay``;
    3. the server hint replaces it; a ``delay_generator`` number replaces both;
    4. a hinted/generated delay above ``max_server_delay`` -> give up.
    """

    __slots__ = (
        "_backoff", "_delay", "_generator", "_generator_async", "_hint", "_max_attempts",
        "_max_delay", "_max_server_delay", "_random", "_stop", "_use_jitter", "_wait",
    )  # fmt: skip

    def __init__(self, options: RetryOptions, random: Callable[[], float]) -> None:
        self._max_attempts = options.max_attempts
        self._backoff = Backoff(options.backoff)
        self._delay = to_seconds(options.delay)
        self._max_delay = to_seconds(options.max_delay)
        self._use_jitter = options.use_jitter
        self._random = random
        self._generator = options.delay_generator
        self._generator_async = is_async(options.delay_generator)
        self._hint = options.retry_after
        self._max_server_delay = to_seconds(options.max_server_delay)
        self._stop = options.stop
        self._wait = options.wait

    async def next_delay(
        self,
        *,
        context: ResilienceContext,
        state: Any,
        outcome: Outcome[Any],
        attempt: int,
        jitter: float,
        started: float,
        now: float,
        idle: float,
    ) -> tuple[float, float]:
        """``(delay, jitter state)`` after zero-based ``attempt`` failed, or raise GiveUp."""
        tenacity = None
        if self._stop is None and attempt + 1 >= self._max_attempts:
            raise GiveUp("max_attempts")
        if self._stop is not None or self._wait is not None:
            tenacity = RetryCallState(
                attempt_number=attempt + 1, outcome=outcome, start_time=started,
                outcome_timestamp=now, idle_for=idle, state=state,
            )  # fmt: skip
        if self._wait is not None:
            delay = max(to_seconds(self._wait(tenacity)), 0.0)
        else:
            delay, jitter = compute_delay(
                self._backoff, attempt, self._delay, use_jitter=self._use_jitter,
                random=self._random, previous_state=jitter, max_delay=self._max_delay,
            )  # fmt: skip
        explicit = None if self._hint is None else _explicit(self._hint(outcome))
        if self._generator is not None:
            value = self._generator(RetryDelayArgs(attempt, outcome, context, delay, explicit))
            if self._generator_async or inspect.isawaitable(value):
                value = await cast("Awaitable[DelayValue]", value)
            generated = _explicit(value)
            if generated is not None:
                explicit = generated
        if explicit is not None:
            if explicit > self._max_server_delay:
                raise GiveUp("server_delay")
            delay = explicit
        if self._stop is not None and tenacity is not None:
            tenacity.upcoming_sleep = delay
            if self._stop(tenacity):
                raise GiveUp("stop")
        return delay, jitter


def _never_retried(exc: BaseException) -> bool:
    """Cancellation and rejections (but timeouts) are never retried, whatever the predicate."""
    if not isinstance(exc, Exception):
        return True
    return isinstance(exc, ExecutionRejectedError) and not isinstance(exc, TimeoutRejectedError)


def _unwrapped(predicate: Callable[[Outcome[Any]], bool]) -> Callable[[Outcome[Any]], bool]:
    """The function inside an ``OutcomePredicate``: one Python call less per attempt."""
    if type(predicate) is OutcomePredicate:
        inner: Callable[[Outcome[Any]], bool] = predicate._fn
        return inner
    return predicate


class RetryStrategy(Strategy):
    """Retries handled outcomes. See :class:`RetryOptions` for the rules."""

    __slots__ = (
        "_budget", "_builds", "_clock", "_delays", "_exceptions_only", "_name", "_never",
        "_on_retry",
        "_on_retry_async", "_owner", "_should_handle", "_telemetry", "_timed",
    )  # fmt: skip

    kind: ClassVar[str] = "retry"
    may_block: ClassVar[bool] = True  # it sleeps; only a fused total timeout's partner is safe

    def __init__(self, options: RetryOptions, build: BuildContext) -> None:
        handles = cast("Callable[[Outcome[Any]], bool]", options.should_handle)  # normalised
        self._should_handle = _unwrapped(handles)
        # A predicate that never handles a success need not see one (fused pipelines skip it).
        self._exceptions_only = getattr(handles, "exceptions_only", False) is True
        self._delays = DelayPolicy(options, build.random)
        self._on_retry = options.on_retry
        self._on_retry_async = is_async(options.on_retry)
        self._budget = options.budget
        self._clock = build.clock
        self._name = build.name
        self._telemetry = build.telemetry(self.kind)
        # Decided once: does anything need attempt timings? (else the success path reads no clock)
        self._timed = bool(
            options.on_retry or self._telemetry.enabled or options.stop or options.wait
        )
        self._never = options.stop is None and options.max_attempts == 1
        self._owner: TimeoutStrategy | None = None  # fused total timeout whose deadline we keep
        self._builds = 0

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        if self._never:
            return await callback(context, state)
        started = self._clock.monotonic() if self._timed else 0.0
        if self._budget is not None:
            self._budget.deposit()
        outcome = await callback(context, state)
        try:
            if not self._should_handle(outcome):
                return outcome
        except Exception as exc:
            return Outcome(None, exc)
        return await self._retry(callback, context, state, outcome, started)

    async def _retry(
        self,
        callback: Callback,
        context: ResilienceContext,
        state: Any,
        outcome: Outcome[Any],
        started: float,
    ) -> Outcome[Any]:
        clock = self._clock
        budget: Budget | None = DEADLINE.get() if self._owner is not None else None
        if budget is not None and budget.owner is not self._owner:
            budget = None
        attempt, jitter, idle, attempt_started = 0, 0.0, 0.0, started
        while True:
            exc = outcome.exception
            if exc is not None and _never_retried(exc):
                return outcome
            if not repeat_allowed(outcome):  # unsafe work that may have reached the upstream
                return self._gave_up(context, outcome, attempt, "unsafe_to_repeat")
            if budget is not None and budget.error is not None:
                return self._gave_up(context, outcome, attempt, "deadline")
            now = clock.monotonic()
            try:
                delay, jitter = await self._delays.next_delay(
                    context=context, state=state, outcome=outcome, attempt=attempt,
                    jitter=jitter, started=started, now=now, idle=idle,
                )  # fmt: skip
            except GiveUp as give_up:
                return self._gave_up(context, outcome, attempt, give_up.reason)
            except Exception as error:  # a user callback failed: it ends the call (Polly)
                await close_discarded(outcome)
                return Outcome(None, error)
            if budget is not None and now + delay >= budget.deadline:
                # No attempt can finish in time: end now rather than sleep into the deadline.
                await close_discarded(outcome)
                self._gave_up(context, outcome, attempt, "deadline")
                return Outcome(None, budget.expire(exc))
            if self._budget is not None and not self._budget.try_spend():
                context.degradation.mark(self._name, DegradationReason.RETRY_BUDGET)
                return self._gave_up(context, outcome, attempt, "budget")
            if self._telemetry.enabled:
                self._telemetry.emit(
                    "retry", Severity.WARNING, context.operation_key, attempt=attempt,
                    delay=delay, duration=now - attempt_started,
                    exception=None if exc is None else type(exc).__name__,
                )  # fmt: skip
            if self._on_retry is not None:
                try:
                    result = self._on_retry(
                        OnRetryArgs(attempt, delay, now - attempt_started, outcome, context)
                    )
                    if self._on_retry_async or inspect.isawaitable(result):
                        await result  # type: ignore[misc]
                except Exception as error:
                    await close_discarded(outcome)
                    return Outcome(None, error)
            await close_discarded(outcome)
            if delay > 0:
                await clock.sleep(delay)  # a cancel here propagates: never retried
                idle += delay
            attempt += 1
            if self._timed:
                attempt_started = clock.monotonic()
            outcome = await callback(context, state)
            try:
                if not self._should_handle(outcome):
                    return outcome
            except Exception as error:
                return Outcome(None, error)

    def _gave_up(
        self, context: ResilienceContext, outcome: Outcome[Any], attempt: int, reason: str
    ) -> Outcome[Any]:
        if self._telemetry.enabled:
            self._telemetry.emit(
                "retries_exhausted", Severity.ERROR, context.operation_key,
                attempts=attempt + 1, reason=reason,
            )  # fmt: skip
        return outcome

    # -- build-time wiring ------------------------------------------------------------
    def _bind_deadline(self, owner: TimeoutStrategy) -> bool:
        """Called by a total timeout that fuses with us; False if we cannot partner."""
        if self._builds or self._owner is not None:
            return False
        self._owner = owner
        return True

    def on_pipeline_built(self, position: int, strategies: Sequence[Strategy]) -> None:
        self._builds += 1
        if self._builds > 1 and self._owner is not None:
            self._owner._unfuse()  # a shared instance: the fused shape may not hold any more

__all__ = ['Backoff', 'OnRetryArgs', 'RetryDelayArgs', 'RetryOptions', 'RetryStrategy']
