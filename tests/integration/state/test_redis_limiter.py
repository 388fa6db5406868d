"""The shared GCRA limiter on a real Redis: weights, reservations, pauses, outages, processes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from netra_resilience import PipelineBuilder, RateLimitRejectedError
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import RedisRateLimiter, redis_breaker, redis_client
from netra_resilience.rate_limiter import RateLimiterOptions
from netra_resilience.testing import FakeClock
from tests.integration.state import _procs
from tests.integration.state.helpers import (
    assert_shared_limit,
    closing_limiters,
    released_together,
)
from tests.servers import RedisServer


class RetryLater(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__("429")
        self.retry_after = seconds


LimiterOn = Callable[..., RedisRateLimiter]


@pytest.fixture
async def limiter_on() -> AsyncIterator[LimiterOn]:
    """Builds a replica's limiter on a client, behind a breaker for it (the limiter takes the
    breaker's clock); closed with the client after the test."""
    made: list[RedisRateLimiter] = []

    def build(
        client: Any, clock: Any = None, *, breaker: Any = None, **options: Any
    ) -> RedisRateLimiter:
        gate = redis_breaker(client, clock=clock, **(breaker or {}))
        made.append(RedisRateLimiter(client, breaker=gate, **options))
        return made[-1]

    async with closing_limiters(made):
        yield build


def two_replicas(
    limiter_on: LimiterOn, url: str, clock: FakeClock, key: str
) -> list[RedisRateLimiter]:
    """Two replicas of one limit (10/s, burst 5): separate clients, the clock's wall time."""
    return [
        limiter_on(redis_client(url), clock, key=key, rate=10, burst=5, use_redis_time=False)
        for _ in range(2)
    ]


@pytest.fixture
def pair(
    redis_server: RedisServer, namespace: str, clock: FakeClock, limiter_on: LimiterOn
) -> list[RedisRateLimiter]:
    return two_replicas(limiter_on, redis_server.url, clock, namespace)


async def test_replicas_draw_from_one_bucket_with_weights(
    pair: list[RedisRateLimiter], clock: FakeClock
) -> None:
    a, b = pair
    await a.acquire(3)
    await b.acquire(2)
    with pytest.raises(RateLimitRejectedError) as info:
        await a.acquire(1)
    assert info.value.retry_after == pytest.approx(0.1)
    with pytest.raises(RateLimitRejectedError) as info:
        await b.acquire(3)  # a weighted request waits for three refills
    assert info.value.retry_after == pytest.approx(0.3)
    await clock.advance(0.3)
    await b.acquire(3)
    assert a.try_acquire(6) == math.inf  # more than the burst: never
    with pytest.raises(RateLimitRejectedError):
        await a.acquire(6, max_wait=100)


class SleepSignal(FakeClock):
    """A fake clock that says when someone starts sleeping on it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await super().sleep(seconds)


async def test_waiters_reserve_their_slots_in_order_and_sleep_exactly(
    redis_server: RedisServer, namespace: str, limiter_on: LimiterOn
) -> None:
    clock = SleepSignal()
    a, b = two_replicas(limiter_on, redis_server.url, clock, namespace)
    await a.acquire(5)  # bucket empty
    for limiter in (a, b, a, b):
        waiter = asyncio.ensure_future(limiter.acquire(1, max_wait=1.0))
        await clock.sleeping.wait()  # Redis reserved its slot (fake time stood still)
        clock.sleeping.clear()
        await clock.advance(0.1)
        await waiter
    # One slot each, no retries (wall time has microsecond resolution).
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1], abs=1e-5)


async def test_an_upstream_429_pauses_every_replica(
    pair: list[RedisRateLimiter], clock: FakeClock
) -> None:
    a, b = pair

    async def throttled() -> None:
        raise RetryLater(3.0)

    pipeline = PipelineBuilder("search", clock=clock).add_rate_limiter(
        RateLimiterOptions(limiter=a)
    )
    with pytest.raises(RetryLater):
        await pipeline.build().execute(throttled)
    await a.drain()  # the pause reached Redis
    with pytest.raises(RateLimitRejectedError) as info:
        await b.acquire(1)
    assert info.value.retry_after == pytest.approx(3.1)  # the pause, then refill from empty
    assert b.paused_until == pytest.approx(clock.monotonic() + 3.0)
    await clock.advance(3.1)
    await b.acquire(1)


async def test_redis_down_each_process_keeps_its_share_then_redis_again(
    fault_redis: RedisServer, namespace: str, clock: FakeClock, limiter_on: LimiterOn
) -> None:
    limiter = limiter_on(
        redis_client(fault_redis.url, connect_timeout=0.2),
        clock,
        breaker={"failure_threshold": 1},  # the first refusal opens: follow each step
        key=namespace,
        rate=10,
        burst=4,
        replicas=2,  # while Redis is down: 5/s, burst 2 per process
        use_redis_time=False,
    )
    pipeline = (
        PipelineBuilder("tool", clock=clock)
        .add_rate_limiter(RateLimiterOptions(limiter=limiter))
        .build()
    )

    async def ok() -> str:
        return "ok"

    await limiter.acquire(1)
    fault_redis.kill()
    ctx = ResilienceContext("tool")
    assert await pipeline.execute(ok, context=ctx) == "ok"  # Redis refused: local share
    assert ctx.degradation.as_dict() == {"redis": "fallback_memory"}
    assert not limiter.breaker.available
    assert limiter.try_acquire(1) == 0.0  # the local share's second (last) burst permit
    assert limiter.try_acquire(1) == pytest.approx(0.2)  # 5/s locally
    with pytest.raises(RateLimitRejectedError):
        await pipeline.execute(ok)
    limiter.pause(2.0)  # a 429 during the outage: Redis hears of it after recovery

    fault_redis.start()  # empty Redis: a full bucket
    await clock.advance(1.0)
    assert await limiter.breaker.probe_now()
    await limiter.drain()
    with pytest.raises(RateLimitRejectedError) as info:
        await limiter.acquire(1)  # the outage's pause now holds in Redis too
    assert info.value.retry_after == pytest.approx(1.1)


async def test_sigstopped_redis_bounded_wait_then_local(
    fault_redis: RedisServer, namespace: str, limiter_on: LimiterOn
) -> None:
    limiter = limiter_on(
        redis_client(fault_redis.url),
        breaker={"timeout": 0.05},
        key=namespace,
        rate=1000,
        burst=100,
    )
    try:
        await limiter.acquire(1)
        fault_redis.pause()
        await asyncio.gather(*(limiter.acquire(1) for _ in range(20)))  # bounded, then local
        assert not limiter.breaker.available
        assert limiter.try_acquire(1) == 0.0  # synchronous, no Redis involved
        fault_redis.resume()
        assert await limiter.breaker.probe_now()
        await limiter.acquire(1)
    finally:
        fault_redis.resume()


async def test_four_processes_stay_within_3_percent_of_the_shared_limit(
    redis_server: RedisServer, process_pool: ProcessPoolExecutor, namespace: str
) -> None:
    """Throughput on real time (the one timed test): 4 processes, 400/s, for 2.5 s."""
    rate, burst = 400.0, 20
    start, runs, redis_wait = await released_together(
        redis_server, process_pool, namespace, _procs.limiter_run, rate, burst, 2.5, {}, 1
    )
    # Default 10 ms leases: at most 2 permits each, two leases held by each of 4 processes.
    assert_shared_limit(start, runs, redis_wait, rate=rate, burst=burst, held=4 * 2 * 2)
