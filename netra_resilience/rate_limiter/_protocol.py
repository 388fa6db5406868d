"""The ``RateLimiter`` protocol: what the strategy needs from any limiter, local or remote."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from netra_resilience._types import Seconds


@runtime_checkable
class RateLimiter(Protocol):
    """A rate limiter the :class:`RateLimiterStrategy` can drive.

    The strategy calls :meth:`try_acquire` first (synchronous, so the common case costs no
    ``await``) and only when that returns a positive number falls back to :meth:`acquire`.
    A remote limiter (Redis) that cannot decide without I/O may therefore always return a
    positive estimate from :meth:`try_acquire` and do the real work in :meth:`acquire`.
    """

    @property
    def rate(self) -> float:
        """Permits added per second."""
        ...

    @property
    def burst(self) -> int:
        """The most permits that can be taken at once (the bucket size)."""
        ...

    @property
    def paused_until(self) -> float | None:
        """Monotonic time (on the limiter's clock) until which it is paused, or ``None``."""
        ...

    def try_acquire(self, permits: int = 1) -> float:
        """Take ``permits`` now if that is possible without waiting or jumping the queue.

        Returns ``0.0`` when they were taken, otherwise the (positive) number of seconds until
        they would be available, without taking anything; ``math.inf`` when ``permits`` can
        never be granted (more than :attr:`burst`).
        """
        ...

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        """Take ``permits``, waiting in FIFO order for at most ``max_wait`` seconds.

        ``None`` means the limiter's own default. Raises a fresh
        :class:`~netra_resilience.RateLimitRejectedError` (with ``retry_after``) when the
        permits cannot be had in time; a cancelled wait takes nothing.
        """
        ...

    def pause(self, seconds: Seconds) -> None:
        """Admit nobody for ``seconds`` from now (an upstream 429's ``Retry-After``).

        A pause extends an earlier one and never shortens it.
        """
        ...
