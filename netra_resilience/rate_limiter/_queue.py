"""The bucket state and the FIFO queue of callers waiting for permits.

Only the head of the queue sleeps (one timer for any number of waiters); the others await a
future that is resolved when they reach the head. A waiter takes its permits itself, while it
runs, so a waiter cancelled at any moment holds nothing: there is nothing to give back and no
reservation to leak. Its place simply passes to the next waiter.

``max_wait`` is checked when a caller joins (against the queue's total demand) and again when
a pause moves the schedule; a waiter admitted on time is not rejected later just because the
event loop ran a little late.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict

from netra_resilience.clock import Clock
from netra_resilience.exceptions import RateLimitRejectedError

EPSILON = 1e-6
"""Times closer than this count as equal (float drift must not cost an extra wake-up)."""


class _Waiter:
    __slots__ = ("deadline", "future", "permits", "retry_after")

    def __init__(self, permits: int, deadline: float) -> None:
        self.permits = permits
        self.deadline = deadline
        self.future: asyncio.Future[None] | None = None
        self.retry_after: float | None = None  # set when a pause rejects it while queued


class BucketQueue:
    """GCRA state (``_empty_at``: when the bucket is or was empty) plus the waiters.

    The base of :class:`TokenBucketLimiter`: inheriting keeps the hot path's attribute reads
    on ``self`` while the waiting logic lives in this file.
    """

    __slots__ = (
        "_burst_time",
        "_clock",
        "_empty_at",
        "_interval",
        "_monotonic",
        "_paused_until",
        "_queued_permits",
        "_waiters",
    )

    def __init__(self, clock: Clock, interval: float, burst_time: float) -> None:
        self._clock = clock
        self._monotonic = clock.monotonic  # bound once: one lookup less per call
        self._interval = interval
        self._burst_time = burst_time
        self._empty_at = -math.inf  # starts full
        self._paused_until = -math.inf
        self._queued_permits = 0
        self._waiters: OrderedDict[_Waiter, None] = OrderedDict()

    async def _wait(self, permits: int, deadline: float) -> None:
        """Queue for ``permits``; the caller checked that ``deadline`` can be met."""
        waiter = _Waiter(permits, deadline)
        self._waiters[waiter] = None
        self._queued_permits += permits
        loop = asyncio.get_running_loop()
        try:
            while True:
                if waiter.retry_after is not None:
                    raise RateLimitRejectedError(
                        "rate limit: paused beyond max_wait", retry_after=waiter.retry_after
                    )
                future = loop.create_future()
                waiter.future = future
                if next(iter(self._waiters)) is not waiter:
                    await future  # resolved when this waiter becomes the head
                    continue
                delay = self._take(waiter)
                if delay == 0.0:
                    return
                try:
                    # Resolved early only by a pause, which changes the head's wait.
                    async with self._clock.timeout(delay):
                        await future
                except TimeoutError:
                    pass
        except BaseException:
            self._leave(waiter)
            raise

    def _take(self, waiter: _Waiter) -> float:
        now = self._monotonic()
        base = max(self._empty_at, now - self._burst_time)
        taken = base + waiter.permits * self._interval
        if taken > now + EPSILON:
            return taken - now
        self._empty_at = taken
        del self._waiters[waiter]
        self._queued_permits -= waiter.permits
        self._wake_head()
        return 0.0

    def _leave(self, waiter: _Waiter) -> None:
        waiters = self._waiters
        if waiter not in waiters:
            return
        was_head = next(iter(waiters)) is waiter
        del waiters[waiter]
        self._queued_permits -= waiter.permits
        if was_head:
            self._wake_head()

    def _wake_head(self) -> None:
        if self._waiters:
            future = next(iter(self._waiters)).future
            if future is not None and not future.done():
                future.set_result(None)

    def _pause_until(self, until: float) -> None:
        """Nothing is admitted before ``until``; the bucket refills from empty after it.

        Queued waiters that can no longer be served within their ``max_wait`` are rejected at
        once (with ``retry_after``) instead of discovering it at their deadline.
        """
        if until <= self._paused_until:
            return
        self._paused_until = until
        self._empty_at = max(self._empty_at, until)
        if not self._waiters:
            return
        now = self._monotonic()
        served_at = self._empty_at
        for waiter in list(self._waiters):
            end = served_at + waiter.permits * self._interval
            if end <= waiter.deadline + EPSILON:
                served_at = end
                continue
            del self._waiters[waiter]
            self._queued_permits -= waiter.permits
            waiter.retry_after = end - now
            future = waiter.future
            if future is not None and not future.done():
                future.set_result(None)
        self._wake_head()  # the head re-computes its (longer) sleep
