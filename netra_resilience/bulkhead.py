"""Bulkhead: a concurrency limit with a bounded FIFO queue and a queue timeout; every seat
is released in ``finally``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import BulkheadRejectedError, InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    integer,
    optional_duration,
    set_field,
)


class ConcurrencyLimiter:
    """``max_concurrency`` seats, ``max_queue`` places to wait for one, ``queue_timeout`` to wait.

    A free seat is taken without awaiting anything. Otherwise the caller queues (FIFO) and a
    released seat is handed directly to the oldest waiter, so a newcomer can never overtake
    the queue. Every exit is accounted for: a waiter cancelled or timed out while queued just
    leaves; one cancelled at the very moment it was handed a seat passes the seat on; one
    whose queue timeout fires at that same moment keeps the seat and proceeds.

    Use ``async with limiter.seat():`` or pair :meth:`acquire` with :meth:`release`.
    """

    __slots__ = ("_clock", "_in_flight", "_max", "_max_queue", "_queue_timeout", "_waiters")

    def __init__(
        self,
        *,
        max_concurrency: int,
        max_queue: int = 0,
        queue_timeout: Seconds | None = None,
        clock: Clock | None = None,
    ) -> None:
        owner = "ConcurrencyLimiter"
        self._max = integer(owner, "max_concurrency", max_concurrency, minimum=1)
        self._max_queue = integer(owner, "max_queue", max_queue, minimum=0)
        self._queue_timeout = optional_duration(owner, "queue_timeout", queue_timeout)
        self._clock = clock or SYSTEM_CLOCK
        self._in_flight = 0
        # Futures of queued callers, oldest first; O(1) removal of a cancelled one.
        self._waiters: OrderedDict[asyncio.Future[None], None] = OrderedDict()

    @property
    def max_concurrency(self) -> int:
        return self._max

    @property
    def max_queue(self) -> int:
        return self._max_queue

    @property
    def queue_timeout(self) -> float | None:
        return self._queue_timeout

    @property
    def in_flight(self) -> int:
        """Seats taken (including one just handed to a waiter that has not resumed yet)."""
        return self._in_flight

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a seat if one is free and nobody is queued; never waits."""
        if self._in_flight < self._max and not self._waiters:
            self._in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a seat, queueing if allowed; raises a fresh ``BulkheadRejectedError`` if not."""
        if self._in_flight < self._max and not self._waiters:
            self._in_flight += 1
            return
        if len(self._waiters) >= self._max_queue:
            raise BulkheadRejectedError(
                f"bulkhead is full: {self._in_flight} in flight, {len(self._waiters)} queued"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[future] = None
        try:
            if self._queue_timeout is None:
                await future
            else:
                async with self._clock.timeout(self._queue_timeout):
                    await future
        except TimeoutError:
            if future.done() and not future.cancelled():
                return  # the seat arrived together with the deadline: keep it
            self._waiters.pop(future, None)
            raise BulkheadRejectedError(
                f"bulkhead queue wait timed out after {self._queue_timeout:g}s"
            ) from None
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # handed a seat, cancelled before resuming: pass it on
            else:
                self._waiters.pop(future, None)
            raise

    def release(self) -> None:
        """Give a seat back: to the oldest live waiter if any, else to the pool."""
        waiters = self._waiters
        while waiters:
            future, _ = waiters.popitem(last=False)
            if not future.done():  # skip waiters cancelled but not yet resumed
                future.set_result(None)
                return
        if self._in_flight <= 0:
            raise RuntimeError("ConcurrencyLimiter.release() called without a held seat")
        self._in_flight -= 1

    def seat(self) -> ConcurrencyLimiter:
        """``async with limiter.seat():`` holds one seat for the block (no allocation)."""
        return self

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimiter(max_concurrency={self._max}, in_flight={self._in_flight}, "
            f"queued={len(self._waiters)}, max_queue={self._max_queue})"
        )


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


_OWNER = "BulkheadOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadOptions:
    """Options of the bulkhead strategy: give ``max_concurrency`` or ``limiter``, not both.

    With ``max_concurrency`` each built pipeline gets its own :class:`ConcurrencyLimiter` on
    the pipeline's clock (``max_queue`` places, ``queue_timeout`` seconds of waiting, ``None``
    = wait as long as it takes). Pass ``limiter`` instead to share one set of seats between
    pipelines; its queue settings then live on the limiter.
    """

    max_concurrency: int | None = None
    limiter: ConcurrencyLimiter | None = None
    max_queue: int = 0
    queue_timeout: Seconds | None = None
    on_rejected: OnBulkheadRejected | None = None

    def __post_init__(self) -> None:
        if (self.max_concurrency is None) == (self.limiter is None):
            raise InvalidOptionsError(
                _OWNER, "max_concurrency", "needs exactly one of max_concurrency= or limiter="
            )
        if self.limiter is not None:
            if not isinstance(self.limiter, ConcurrencyLimiter):
                raise InvalidOptionsError(_OWNER, "limiter", "must be a ConcurrencyLimiter")
            if self.max_queue != 0:
                raise InvalidOptionsError(_OWNER, "max_queue", "is set on the limiter itself")
            if self.queue_timeout is not None:
                raise InvalidOptionsError(_OWNER, "queue_timeout", "is set on the limiter itself")
        else:
            assert self.max_concurrency is not None
            integer(_OWNER, "max_concurrency", self.max_concurrency, minimum=1)
        integer(_OWNER, "max_queue", self.max_queue, minimum=0)
        set_field(
            self, "queue_timeout", optional_duration(_OWNER, "queue_timeout", self.queue_timeout)
        )
        callable_or_none(_OWNER, "on_rejected", self.on_rejected)

    def create_strategy(self, build: BuildContext) -> BulkheadStrategy:
        limiter = self.limiter
        if limiter is None:
            assert self.max_concurrency is not None
            limiter = ConcurrencyLimiter(
                max_concurrency=self.max_concurrency,
                max_queue=self.max_queue,
                queue_timeout=self.queue_timeout,
                clock=build.clock,
            )
        return BulkheadStrategy(limiter, build, self.on_rejected)

__all__ = [
    "BulkheadOptions",
    "BulkheadStrategy",
    "ConcurrencyLimiter",
    "OnBulkheadRejected",
    "OnBulkheadRejectedArgs",
]
