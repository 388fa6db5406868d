"""``ConcurrencyLimiter``: at most N calls at once, a bounded FIFO queue, cancellation-safe."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from types import TracebackType

from netra_resilience._types import Seconds
from netra_resilience._validation import integer, optional_duration
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import BulkheadRejectedError


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
