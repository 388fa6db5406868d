"""``RetryStrategy``: the attempt loop. The success path is one await and one predicate call."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from .._types import to_seconds
from ..backoff import Backoff, compute_delay
from ..context import ResilienceContext
from ..exceptions import ExecutionRejectedError, TimeoutRejectedError
from ..outcome import Outcome
from ..strategy import BuildContext, Callback, Strategy
from ..telemetry import Severity
from ..timeout._fusion import DEADLINE, Budget
from ._args import OnRetryArgs, RetryDelayArgs
from ._close import close_discarded
from ._options import DelayValue, RetryOptions
from ._tenacity import RetryCallState

if TYPE_CHECKING:
    from ..timeout import TimeoutStrategy


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


def _explicit(value: Any) -> float | None:
    """A hint or generated delay: ``None``, negative or NaN means "none given"."""
    if value is None:
        return None
    seconds = to_seconds(value)
    return seconds if seconds >= 0 else None  # NaN fails the comparison too


def _never_retried(exc: BaseException) -> bool:
    """Cancellation and rejections (but timeouts) are never retried, whatever the predicate."""
    if not isinstance(exc, Exception):
        return True
    return isinstance(exc, ExecutionRejectedError) and not isinstance(exc, TimeoutRejectedError)


class _GiveUp(Exception):
    """Internal control flow of the delay decision; never escapes the strategy."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class RetryStrategy(Strategy):
    """Retries handled outcomes. See :class:`RetryOptions` for the rules."""

    __slots__ = (
        "_backoff", "_builds", "_clock", "_delay", "_generator", "_generator_async", "_hint",
        "_max_attempts", "_max_delay", "_max_server_delay", "_name", "_never", "_on_retry",
        "_on_retry_async", "_owner", "_random", "_should_handle", "_stop", "_telemetry",
        "_timed", "_use_jitter", "_wait",
    )  # fmt: skip

    kind: ClassVar[str] = "retry"
    may_block: ClassVar[bool] = True  # it sleeps; only a fused total timeout's partner is safe

    def __init__(self, options: RetryOptions, build: BuildContext) -> None:
        self._max_attempts = options.max_attempts
        self._backoff = Backoff(options.backoff)
        self._delay = to_seconds(options.delay)
        self._max_delay = to_seconds(options.max_delay)
        self._use_jitter = options.use_jitter
        self._should_handle = options.should_handle
        self._generator = options.delay_generator
        self._generator_async = _is_async(options.delay_generator)
        self._hint = options.retry_after
        self._max_server_delay = to_seconds(options.max_server_delay)
        self._stop = options.stop
        self._wait = options.wait
        self._on_retry = options.on_retry
        self._on_retry_async = _is_async(options.on_retry)
        self._random = build.random
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
            if budget is not None and budget.error is not None:
                return self._gave_up(context, outcome, attempt, "deadline")
            now = clock.monotonic()
            try:
                delay, jitter = await self._next_delay(
                    context=context, state=state, outcome=outcome, attempt=attempt,
                    jitter=jitter, started=started, now=now, idle=idle,
                )  # fmt: skip
            except _GiveUp as give_up:
                return self._gave_up(context, outcome, attempt, give_up.reason)
            except Exception as error:  # a user callback failed: it ends the call (Polly)
                await close_discarded(outcome)
                return Outcome(None, error)
            if budget is not None and now + delay >= budget.deadline:
                # No attempt can finish in time: end now rather than sleep into the deadline.
                await close_discarded(outcome)
                self._gave_up(context, outcome, attempt, "deadline")
                return Outcome(None, budget.expire(exc))
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

    async def _next_delay(
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
        """The sleep before the next attempt (and the jitter state), or raise ``_GiveUp``."""
        tenacity = None
        if self._stop is None:
            if attempt + 1 >= self._max_attempts:
                raise _GiveUp("max_attempts")
        else:
            tenacity = RetryCallState(
                attempt_number=attempt + 1, outcome=outcome, start_time=started,
                outcome_timestamp=now, idle_for=idle, state=state,
            )  # fmt: skip
        if self._wait is not None:
            if tenacity is None:
                tenacity = RetryCallState(
                    attempt_number=attempt + 1, outcome=outcome, start_time=started,
                    outcome_timestamp=now, idle_for=idle, state=state,
                )  # fmt: skip
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
                raise _GiveUp("server_delay")
            delay = explicit
        if tenacity is not None and self._stop is not None:
            tenacity.upcoming_sleep = delay
            if self._stop(tenacity):
                raise _GiveUp("stop")
        return delay, jitter

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
