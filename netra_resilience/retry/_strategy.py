"""``RetryStrategy``: the attempt loop. The success path is one await and one predicate call."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import ExecutionRejectedError, TimeoutRejectedError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import OutcomePredicate
from netra_resilience.retry._args import OnRetryArgs
from netra_resilience.retry._close import close_discarded
from netra_resilience.retry._delays import DelayPolicy, GiveUp, is_async
from netra_resilience.retry._options import RetryOptions
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.timeout._fusion import DEADLINE, Budget

if TYPE_CHECKING:
    from netra_resilience.timeout import TimeoutStrategy


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
        "_builds", "_clock", "_delays", "_name", "_never", "_on_retry", "_on_retry_async",
        "_owner", "_should_handle", "_telemetry", "_timed",
    )  # fmt: skip

    kind: ClassVar[str] = "retry"
    may_block: ClassVar[bool] = True  # it sleeps; only a fused total timeout's partner is safe

    def __init__(self, options: RetryOptions, build: BuildContext) -> None:
        self._should_handle = _unwrapped(options.should_handle)
        self._delays = DelayPolicy(options, build.random)
        self._on_retry = options.on_retry
        self._on_retry_async = is_async(options.on_retry)
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
