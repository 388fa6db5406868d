"""The shared GCRA limiter on a real Redis: weights, reservations, pauses, outages, processes."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from netra_resilience import PipelineBuilder, RateLimitRejectedError
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import RedisRateLimiter, redis_breaker, redis_client
from netra_resilience.rate_limiter import RateLimiterOptions
from netra_resilience.testing import FakeClock
from tests.integration.state import _procs
from tests.servers import RedisServer


class RetryLater(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__("429")
        self.retry_after = seconds


def limiter_on(
    client: Any, clock: Any = None, *, breaker: Any = None, **options: Any
) -> RedisRateLimiter:
    """A replica's limiter behind a breaker for its client; the limiter takes its clock."""
    gate = redis_breaker(client, clock=clock, **(breaker or {}))
    return RedisRateLimiter(client, breaker=gate, **options)


@pytest.fixture
async def pair(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> AsyncIterator[list[RedisRateLimiter]]:
    """Two replicas of one limit (10/s, burst 5): separate clients, fake clock's wall time."""
    made = [
        limiter_on(
            redis_client(redis_server.url),
            clock,
            key=namespace,
            rate=10,
            burst=5,
            use_redis_time=False,
        )
        for _ in range(2)
    ]
    yield made
    for limiter in made:
        await limiter.aclose()
        await limiter.client.aclose()


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
    redis_server: RedisServer, namespace: str
) -> None:
    clock = SleepSignal()
    a, b = (
        limiter_on(
            redis_client(redis_server.url),
            clock,
            key=namespace,
            rate=10,
            burst=5,
            use_redis_time=False,
        )
        for _ in range(2)
    )
    try:
        await a.acquire(5)  # bucket empty
        for limiter in (a, b, a, b):
            waiter = asyncio.ensure_future(limiter.acquire(1, max_wait=1.0))
            await clock.sleeping.wait()  # Redis reserved its slot (fake time stood still)
            clock.sleeping.clear()
            await clock.advance(0.1)
            await waiter
        # One slot each, no retries (wall time has microsecond resolution).
        assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1], abs=1e-5)
    finally:
        for limiter in (a, b):
            await limiter.aclose()
            await limiter.client.aclose()


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
    fault_redis: RedisServer, namespace: str, clock: FakeClock
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

    try:
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
    finally:
        await limiter.aclose()
        await limiter.client.aclose()


async def test_sigstopped_redis_bounded_wait_then_local(
    fault_redis: RedisServer, namespace: str
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
        await limiter.aclose()
        await limiter.client.aclose()


async def test_four_processes_stay_within_3_percent_of_the_shared_limit(
    redis_server: RedisServer, process_pool: ProcessPoolExecutor, namespace: str
) -> None:
    """Throughput on real time (the one timed test): 4 processes, 400/s, for 2.5 s."""
    rate, burst, duration, workers = 400.0, 20, 2.5, 4
    ready, go = f"{namespace}:ready", f"{namespace}:go"
    args: Any = (redis_server.url, namespace, rate, burst, duration, ready, go)
    runs = [
        asyncio.wrap_future(process_pool.submit(_procs.limiter_run, *args)) for _ in range(workers)
    ]
    client = redis_client(redis_server.url, socket_timeout=60)
    try:
        for _ in range(workers):  # every worker is up and connected
            assert await client.blpop([ready], timeout=60) is not None
        start = time.time() + 0.2
        await client.rpush(go, *([repr(start)] * workers))
        counts = await asyncio.gather(*runs)
    finally:
        await client.aclose()
    achieved = (sum(counts) - burst) / duration
    print(f"\nlimiter: {workers} processes, per process {counts}, {achieved:.1f}/s of {rate:g}/s")
    assert all(c > 0 for c in counts)
    assert abs(achieved - rate) <= 0.03 * rate
