"""``PartitionedRateLimiter``: one limiter per key (user, tenant, tool), in a bounded LRU."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from netra_resilience._validation import integer
from netra_resilience.rate_limiter._protocol import RateLimiter


class PartitionedRateLimiter:
    """Hands out one :class:`RateLimiter` per partition key, created on first use.

    Keys are usually user or tool ids, so their number is unbounded; the partitions live in
    an LRU of at most ``max_partitions``. An evicted partition starts again from a full
    bucket (and forgets a pause) when its key returns, so size ``max_partitions`` above the
    number of keys active within one burst window. Callers already waiting on an evicted
    limiter are still served by it.

    Example::

        per_user = PartitionedRateLimiter(
            lambda key: TokenBucketLimiter(rate=1.0, burst=5), max_partitions=10_000
        )
    """

    __slots__ = ("_factory", "_max_partitions", "_partitions")

    def __init__(
        self, factory: Callable[[str], RateLimiter], *, max_partitions: int = 10_000
    ) -> None:
        if not callable(factory):
            raise TypeError("PartitionedRateLimiter.factory must be callable")
        self._factory = factory
        self._max_partitions = integer(
            "PartitionedRateLimiter", "max_partitions", max_partitions, minimum=1
        )
        self._partitions: OrderedDict[str, RateLimiter] = OrderedDict()

    @property
    def max_partitions(self) -> int:
        return self._max_partitions

    def get(self, key: str) -> RateLimiter:
        """The limiter of ``key`` (created by the factory on first use, then reused)."""
        partitions = self._partitions
        limiter = partitions.get(key)
        if limiter is not None:
            partitions.move_to_end(key)
            return limiter
        limiter = self._factory(key)
        partitions[key] = limiter
        if len(partitions) > self._max_partitions:
            partitions.popitem(last=False)
        return limiter

    def peek(self, key: str) -> RateLimiter | None:
        """The limiter of ``key`` if it exists, without creating it or refreshing its age."""
        return self._partitions.get(key)

    def __len__(self) -> int:
        return len(self._partitions)

    def __contains__(self, key: object) -> bool:
        return key in self._partitions

    def __repr__(self) -> str:
        return (
            f"PartitionedRateLimiter(partitions={len(self._partitions)}, "
            f"max_partitions={self._max_partitions})"
        )
