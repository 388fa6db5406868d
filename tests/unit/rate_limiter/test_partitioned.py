"""PartitionedRateLimiter: per-key isolation and a bounded LRU of partitions."""

from __future__ import annotations

import pytest

from netra_resilience import InvalidOptionsError
from netra_resilience.rate_limiter import PartitionedRateLimiter, RateLimiter, TokenBucketLimiter
from netra_resilience.testing import FakeClock


def _per_key(clock: FakeClock, created: list[str]) -> PartitionedRateLimiter:
    def factory(key: str) -> RateLimiter:
        created.append(key)
        return TokenBucketLimiter(rate=1, burst=2, clock=clock)

    return PartitionedRateLimiter(factory, max_partitions=2)


def test_keys_are_isolated(clock: FakeClock) -> None:
    created: list[str] = []
    limiters = _per_key(clock, created)
    alice = limiters.get("alice")
    assert [alice.try_acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiters.get("bob").try_acquire() == 0.0  # alice's exhaustion is hers alone
    assert limiters.get("alice") is alice
    assert created == ["alice", "bob"]


def test_partitions_are_a_bounded_lru(clock: FakeClock) -> None:
    created: list[str] = []
    limiters = _per_key(clock, created)
    first_a = limiters.get("a")
    limiters.get("b")
    limiters.get("a")  # refresh a: b is now the least recently used
    limiters.get("c")
    assert len(limiters) == 2
    assert "b" not in limiters and "a" in limiters and "c" in limiters
    assert limiters.peek("a") is first_a and limiters.peek("b") is None
    limiters.get("b")  # recreated
    assert created == ["a", "b", "c", "b"]
    for i in range(1000):
        limiters.get(f"user-{i}")
    assert len(limiters) == limiters.max_partitions == 2
    assert "max_partitions=2" in repr(limiters)


def test_invalid_options(clock: FakeClock) -> None:
    with pytest.raises(InvalidOptionsError, match=r"PartitionedRateLimiter\.max_partitions"):
        PartitionedRateLimiter(lambda key: TokenBucketLimiter(rate=1, burst=1), max_partitions=0)
    with pytest.raises(TypeError, match="factory"):
        PartitionedRateLimiter("not callable", max_partitions=1)  # type: ignore[arg-type]
