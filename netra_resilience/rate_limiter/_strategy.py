"""``RateLimiterStrategy``: take permits before the call; a 429 afterwards pauses the limiter."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import RateLimitRejectedError
from netra_resilience.hints import MAX_SANE_HINT, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.rate_limiter._args import OnRateLimiterRejectedArgs
from netra_resilience.rate_limiter._partitioned import PartitionedRateLimiter
from netra_resilience.rate_limiter._protocol import RateLimiter
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity

if TYPE_CHECKING:
    from netra_resilience.rate_limiter._options import RateLimiterOptions


def _scope_key(context: ResilienceContext) -> str:
    return context.scope


class RateLimiterStrategy(Strategy):
    """Acquires permits (sync fast path, FIFO wait otherwise), then runs the callback.

    A rejection becomes ``Outcome(RateLimitRejectedError(retry_after=..., dependency=name))``
    and marks the request ``rate_limited``. After the call, ``pause_hint`` reads an upstream
    ``Retry-After`` from the outcome and pauses the limiter, so one 429 holds back every
    caller instead of letting each discover it with its own request.
    """

    __slots__ = (
        "_hint",
        "_hint_results",
        "_limiter",
        "_max_wait",
        "_name",
        "_on_rejected",
        "_partition_key",
        "_partitioned",
        "_permits",
        "_permits_of",
        "_telemetry",
        "_try_acquire",
    )

    kind: ClassVar[str] = "rate_limiter"
    may_block: ClassVar[bool] = True

    def __init__(self, options: RateLimiterOptions, build: BuildContext) -> None:
        self._name = build.name
        self._limiter = options.limiter
        self._partitioned = options.partitioned
        self._partition_key = options.partition_key or _scope_key
        permits = options.permits
        self._permits_of = None if isinstance(permits, int) else permits
        self._permits = permits if isinstance(permits, int) else 1
        self._max_wait = options.max_wait
        self._hint = options.pause_hint
        # The default hint reads exceptions only: skip it on successes (decided once, here).
        self._hint_results = self._hint is not None and self._hint is not retry_after_of
        self._on_rejected = options.on_rejected
        # Decided once: a shared limiter with a constant cost takes the sync fast path.
        fixed = self._limiter is not None and self._permits_of is None
        self._try_acquire = self._limiter.try_acquire if fixed and self._limiter else None
        self._telemetry = build.telemetry(self.kind)

    @property
    def limiter(self) -> RateLimiter | None:
        return self._limiter

    @property
    def partitioned(self) -> PartitionedRateLimiter | None:
        return self._partitioned

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        try_acquire = self._try_acquire
        try:
            acquired = try_acquire is not None and try_acquire(self._permits) == 0.0
        except Exception as exc:  # a third-party limiter's bug must not escape as a raise
            return Outcome(None, exc)
        if not acquired:
            return await self._execute_slow(callback, context, state)
        # Fast path: one shared limiter, constant cost, permits taken without an await.
        outcome = await callback(context, state)
        if self._hint_results or (outcome.exception is not None and self._hint is not None):
            self._pause(self._limiter, outcome, context)
        return outcome

    async def _execute_slow(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        permits = self._permits
        try:
            limiter, permits = self._resolve(context)
            # With a fast path, its try_acquire already failed; else try the sync path first.
            if self._try_acquire is not None or limiter.try_acquire(permits) != 0.0:
                await limiter.acquire(permits, max_wait=self._max_wait)
        except RateLimitRejectedError as exc:
            return await self._rejected(context, exc, permits)
        except Exception as exc:  # a bad key/permits function, a remote limiter's error
            return Outcome(None, exc)
        outcome = await callback(context, state)
        if self._hint_results or (outcome.exception is not None and self._hint is not None):
            self._pause(limiter, outcome, context)
        return outcome

    def _resolve(self, context: ResilienceContext) -> tuple[RateLimiter, int]:
        limiter = self._limiter
        if limiter is None:
            assert self._partitioned is not None
            limiter = self._partitioned.get(self._partition_key(context))
        permits = self._permits
        if self._permits_of is not None:
            permits = self._permits_of(context)
            if isinstance(permits, bool) or not isinstance(permits, int) or permits < 0:
                raise ValueError(
                    f"RateLimiterOptions.permits returned {permits!r}, not an int >= 0"
                )
        return limiter, permits

    async def _rejected(
        self, context: ResilienceContext, cause: RateLimitRejectedError, permits: int
    ) -> Outcome[Any]:
        # A fresh error, named after this dependency, without the limiter's traceback.
        error = RateLimitRejectedError(
            str(cause), retry_after=cause.retry_after, dependency=self._name
        )
        context.degradation.mark(self._name, DegradationReason.RATE_LIMITED)
        if self._telemetry.enabled:
            self._telemetry.emit(
                "rate_limiter_rejected",
                Severity.WARNING,
                context.operation_key,
                permits=permits,
                retry_after=error.retry_after,
            )
        if self._on_rejected is not None:
            try:
                result = self._on_rejected(OnRateLimiterRejectedArgs(context, error, permits))
                if inspect.isawaitable(result):
                    await result
            except Exception:  # an observer must not turn a rejection into another error
                pass
        return Outcome(None, error)

    def _pause(
        self, limiter: RateLimiter | None, outcome: Outcome[Any], context: ResilienceContext
    ) -> None:
        if self._hint is None or limiter is None:
            return
        try:
            seconds = self._hint(outcome)
            if seconds is None or not 0.0 < seconds <= MAX_SANE_HINT:
                return
            limiter.pause(seconds)
        except Exception:  # a broken hint or a remote limiter's error must not fail the call
            return
        if self._telemetry.enabled:
            self._telemetry.emit(
                "rate_limiter_paused", Severity.WARNING, context.operation_key, seconds=seconds
            )
