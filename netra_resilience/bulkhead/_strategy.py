"""``BulkheadStrategy``: hold a seat of a :class:`ConcurrencyLimiter` around the call."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from netra_resilience.bulkhead._concurrency import ConcurrencyLimiter
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import BulkheadRejectedError
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity


@dataclass(frozen=True, slots=True)
class OnBulkheadRejectedArgs:
    """What ``on_rejected`` receives: the call's context and the rejection."""

    context: ResilienceContext
    error: BulkheadRejectedError


OnBulkheadRejected = Callable[[OnBulkheadRejectedArgs], Awaitable[None] | None]


class BulkheadStrategy(Strategy):
    """Takes a seat (free seat: no ``await``), runs the callback, releases in ``finally``.

    A full bulkhead (queue full or queue wait timed out) becomes
    ``Outcome(BulkheadRejectedError(dependency=name))`` and marks the request
    ``bulkhead_full``. The seat is released on every exit, ``CancelledError`` included.
    """

    __slots__ = ("_limiter", "_name", "_on_rejected", "_telemetry")

    kind: ClassVar[str] = "bulkhead"
    may_block: ClassVar[bool] = True

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        build: BuildContext,
        on_rejected: OnBulkheadRejected | None = None,
    ) -> None:
        self._limiter = limiter
        self._name = build.name
        self._on_rejected = on_rejected
        self._telemetry = build.telemetry(self.kind)

    @property
    def limiter(self) -> ConcurrencyLimiter:
        return self._limiter

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        limiter = self._limiter
        if not limiter.try_acquire():
            try:
                await limiter.acquire()
            except BulkheadRejectedError as exc:
                return await self._rejected(context, exc)
        try:
            return await callback(context, state)
        finally:
            limiter.release()

    async def _rejected(
        self, context: ResilienceContext, cause: BulkheadRejectedError
    ) -> Outcome[Any]:
        error = BulkheadRejectedError(str(cause), dependency=self._name)
        context.degradation.mark(self._name, DegradationReason.BULKHEAD_FULL)
        if self._telemetry.enabled:
            self._telemetry.emit(
                "bulkhead_rejected",
                Severity.WARNING,
                context.operation_key,
                in_flight=self._limiter.in_flight,
                queued=self._limiter.queued,
            )
        if self._on_rejected is not None:
            try:
                result = self._on_rejected(OnBulkheadRejectedArgs(context, error))
                if inspect.isawaitable(result):
                    await result
            except Exception:  # an observer must not turn a rejection into another error
                pass
        return Outcome(None, error)
