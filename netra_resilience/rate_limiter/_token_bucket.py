"""``TokenBucketLimiter``: a GCRA token bucket on the injected clock, with a FIFO wait queue."""

from __future__ import annotations

import math

from netra_resilience._types import Seconds, to_seconds
from netra_resilience._validation import duration, integer, number
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import RateLimitRejectedError
from netra_resilience.rate_limiter._queue import EPSILON, BucketQueue


def _seconds_arg(name: str, value: Seconds) -> float:
    seconds = to_seconds(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {seconds!r}")
    return seconds


class TokenBucketLimiter(BucketQueue):
    """``rate`` permits per second, at most ``burst`` at once; weighted, FIFO, pausable.

    The bucket is kept as one number (GCRA): the time at which it was, or will be, empty. A
    free permit costs one clock read and a few float operations, with no ``await``. Callers
    that must wait queue in FIFO order and only the head of the queue sleeps, so a thousand
    waiters cost one timer, not a thousand wake-ups per tick; a big request at the head is
    never overtaken by small ones.

    ``max_wait`` is the default bound on a wait (``0.0``: reject at once with
    ``retry_after``). :meth:`pause` (an upstream 429) also empties the bucket: permits come
    back at ``rate`` after the pause, not as one burst that would trip the upstream again.
    """

    __slots__ = ("_burst", "_max_wait", "_rate")

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Clock | None = None,
        max_wait: Seconds = 0.0,
    ) -> None:
        owner = "TokenBucketLimiter"
        self._rate = number(owner, "rate", rate)
        self._burst = integer(owner, "burst", burst, minimum=1)
        self._max_wait = duration(owner, "max_wait", max_wait, allow_zero=True)
        super().__init__(clock or SYSTEM_CLOCK, 1.0 / self._rate, self._burst / self._rate)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def max_wait(self) -> float:
        return self._max_wait

    @property
    def waiting(self) -> int:
        """Callers queued for permits right now."""
        return len(self._waiters)

    @property
    def paused_until(self) -> float | None:
        until = self._paused_until
        return until if until > self._monotonic() else None

    def try_acquire(self, permits: int = 1) -> float:
        now = self._monotonic()
        base = self._empty_at
        floor = now - self._burst_time
        if base < floor:  # noqa: PLR1730 (an if is cheaper than max() on the hot path)
            base = floor
        if permits >= 0 and not self._waiters:
            taken = base + permits * self._interval
            if taken <= now + EPSILON:
                self._empty_at = taken
                return 0.0
        return self._wait_needed(permits, now, base)

    def _wait_needed(self, permits: int, now: float, base: float) -> float:
        if permits < 0:
            raise ValueError(f"permits must be >= 0, got {permits!r}")
        if permits == 0:
            return 0.0
        if permits > self._burst:
            return math.inf
        wait = base + (self._queued_permits + permits) * self._interval - now
        return wait if wait > EPSILON else EPSILON

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        limit = self._max_wait if max_wait is None else _seconds_arg("max_wait", max_wait)
        wait = self.try_acquire(permits)
        if wait == 0.0:
            return
        if permits > self._burst:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permits exceed the burst of {self._burst}; "
                "such a request can never be admitted"
            )
        if wait > limit + EPSILON:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permit(s) not available within {limit:g}s",
                retry_after=wait,
            )
        await self._wait(permits, self._monotonic() + limit)

    def pause(self, seconds: Seconds) -> None:
        pause = _seconds_arg("pause seconds", seconds)
        if pause > 0:
            self._pause_until(self._monotonic() + pause)

    def __repr__(self) -> str:
        return (
            f"TokenBucketLimiter(rate={self._rate:g}, burst={self._burst}, "
            f"max_wait={self._max_wait:g}, waiting={self.waiting})"
        )
