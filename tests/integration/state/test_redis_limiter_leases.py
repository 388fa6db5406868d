"""Leases of the shared limiter on a real Redis: batches, the accuracy bound, give-backs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from netra_resilience import RateLimitRejectedError
from netra_resilience.integrations.redis import RedisRateLimiter, redis_breaker, redis_client
from netra_resilience.testing import FakeClock
from tests.integration.state import _procs
from tests.servers import RedisServer


def replica(url: str, clock: FakeClock, **options: Any) -> RedisRateLimiter:
    """One process's limiter: its own client, the fake clock's wall time sent to Redis."""
    client = redis_client(url)
    return RedisRateLimiter(
        client, breaker=redis_breaker(client, clock=clock), use_redis_time=False, **options
    )


async def script_calls(url: str) -> int:
    """How many limiter scripts the server has run (EVALSHA, or EVAL the first time)."""
    client = redis_client(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0)) for cmd in ("evalsha", "eval"))


async def advance_after_replies(clock: FakeClock, limiter: Any, callers: Any) -> None:
    """``advance_until_done``, but the fake clock never moves while a lease request is on its
    way to the real Redis: on a loaded machine its reply can take longer than one settle, and
    moving time then would wake callers into requests the test does not expect."""
    task = asyncio.ensure_future(callers)
    try:
        for _ in range(10_000):
            await clock.settle()
            if task.done():
                task.result()
                return
            leasing = limiter._leasing
            if leasing is not None and not leasing.done():
                await asyncio.wait(
                    {task, leasing}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            deadline = clock.next_deadline()
            if deadline is None:
                await asyncio.wait({task}, timeout=0.05)
            else:
                await clock.advance(max(deadline - clock.monotonic(), 0.0))
        raise RuntimeError("callers did not finish")
    finally:
        if not task.done():
            task.cancel()


@pytest.fixture
async def replicas(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> AsyncIterator[list[RedisRateLimiter]]:
    """Four replicas of 2000/s, burst 40, 20 ms leases: two leases of at most 5 each."""
    made = [
        replica(
            redis_server.url,
            clock,
            key=namespace,
            rate=2000,
            burst=40,
            replicas=4,
            lease_window=0.02,
        )
        for _ in range(4)
    ]
    yield made
    for limiter in made:
        await limiter.aclose()
        await limiter.client.aclose()


async def test_a_busy_process_takes_permits_in_batches(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    limiter = replica(
        redis_server.url, clock, key=namespace, rate=1000, burst=100, lease_window=0.05
    )
    assert limiter.lease_max == 25  # rate * lease_window / (2 leases * replicas)
    try:
        before = await script_calls(redis_server.url)
        for _ in range(1000):  # as fast as the rate allows: 1 ms apart on the clock
            await limiter.acquire(1)
            await clock.advance(0.001)
        calls = await script_calls(redis_server.url) - before
    finally:
        await limiter.aclose()
        await limiter.client.aclose()
    # 1, 2, 4, 8, 16, then 25 at a time: about 44 round trips instead of 1000.
    assert calls <= 60, calls


async def test_at_a_low_rate_every_acquisition_asks_redis(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    limiter = replica(redis_server.url, clock, key=namespace, rate=50, burst=10)
    assert limiter.lease_max == 1  # 50/s * 10 ms / 2 < 1: no batches, exact as before
    try:
        before = await script_calls(redis_server.url)
        for _ in range(10):
            await limiter.acquire(1)
        assert await script_calls(redis_server.url) - before == 10
        assert limiter.held == 0
    finally:
        await limiter.aclose()
        await limiter.client.aclose()


async def test_without_leases_concurrent_callers_ask_redis_concurrently(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    """No batches to share (lease_window=0): callers do not queue behind one request."""
    limiter = replica(redis_server.url, clock, key=namespace, rate=1000, burst=100, lease_window=0)
    assert limiter.lease_max == 1
    script = limiter._script
    in_flight, most = 0, 0

    async def counted(**kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await script(**kwargs)
        finally:
            in_flight -= 1

    limiter._script = counted  # type: ignore[assignment]
    try:
        before = await script_calls(redis_server.url)
        await asyncio.gather(*(limiter.acquire(1) for _ in range(8)))
        assert await script_calls(redis_server.url) - before == 8
        assert most == 8  # all eight round trips were on their way at once
        assert limiter.held == 0
    finally:
        await limiter.aclose()
        await limiter.client.aclose()


async def test_four_replicas_stay_within_the_documented_bound(
    replicas: list[RedisRateLimiter], clock: FakeClock
) -> None:
    """Greedy replicas on fake time: every window within rate*T + burst + what leases hold."""
    rate, burst, held_max, steps = 2000, 40, 4 * 10, 400
    per_ms: list[int] = []
    for _ in range(steps):  # 1 ms steps; each replica wants 1 permit a step (2x the rate)
        granted = 0
        for limiter in replicas:
            if limiter.try_acquire(1) == 0.0 or await _granted(limiter):
                granted += 1
        per_ms.append(granted)
        await clock.advance(0.001)
    total = sum(per_ms)
    expected = rate * (steps - 1) / 1000 + burst  # minted by the last step, from a full bucket
    assert expected - held_max <= total <= expected, total
    for width in (5, 20, 100):  # sliding windows of 5, 20, 100 ms
        worst = max(sum(per_ms[i : i + width]) for i in range(len(per_ms) - width + 1))
        assert worst <= rate * (width + 1) / 1000 + burst + held_max, (width, worst)


async def test_unused_permits_go_back_to_the_bucket(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    a, b = (
        replica(redis_server.url, clock, key=namespace, rate=100, burst=16, lease_window=0.1)
        for _ in range(2)
    )
    try:
        for _ in range(4):  # leases of 1, 2, 4: a holds 1 + 2 + 4 - 4 = 3 unused permits
            await a.acquire(1)
        assert a.held == 3
        taken = 0
        while b.try_acquire(1) == 0.0 or await _granted(b):
            taken += 1
        assert taken == 16 - 7  # the rest of the bucket (time stands still)
        await a.aclose()  # a's unused permits go back
        assert a.held == 0
        returned = 0
        while b.try_acquire(1) == 0.0 or await _granted(b):
            returned += 1
        assert returned == 3
    finally:
        for limiter in (a, b):
            await limiter.aclose()
            await limiter.client.aclose()


async def _granted(limiter: RedisRateLimiter) -> bool:
    try:
        await limiter.acquire(1, max_wait=0)
    except RateLimitRejectedError:
        return False
    return True


async def test_an_expired_lease_is_not_used_and_its_rest_goes_back(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    a, b = (
        replica(redis_server.url, clock, key=namespace, rate=100, burst=16, lease_window=0.1)
        for _ in range(2)
    )
    try:
        for _ in range(4):
            await a.acquire(1)
        assert a.held == 3
        await clock.advance(0.2)  # past the lease (0.1 s); the bucket is full again
        assert a.try_acquire(1) > 0.0  # the expired lease serves nothing
        while b.try_acquire(1) == 0.0 or await _granted(b):
            pass  # b empties the bucket
        await a.acquire(1, max_wait=0)  # a's request gives its 3 back, then takes one
        assert a.held == 0  # demand shrank to what was used: a lease of one
        extra = 0
        while b.try_acquire(1) == 0.0 or await _granted(b):
            extra += 1
        assert extra == 2
    finally:
        for limiter in (a, b):
            await limiter.aclose()
            await limiter.client.aclose()


async def test_a_pause_drops_the_lease(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    limiter = replica(redis_server.url, clock, key=namespace, rate=100, burst=16, lease_window=0.1)
    try:
        for _ in range(4):
            await limiter.acquire(1)
        assert limiter.held == 3
        limiter.pause(1.0)  # an upstream 429: nothing is handed out locally either
        assert limiter.held == 0
        assert limiter.try_acquire(1) > 0.0
        await limiter.drain()
        with pytest.raises(RateLimitRejectedError):
            await limiter.acquire(1, max_wait=0)
    finally:
        await limiter.aclose()
        await limiter.client.aclose()


async def test_waiting_callers_share_one_lease_request(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> None:
    limiter = replica(
        redis_server.url, clock, key=namespace, rate=1000, burst=10, lease_window=0.05
    )
    try:
        for _ in range(4):
            await limiter.acquire(1)  # leases 1, 2, 4: the next lease may hold 8
        for _ in range(limiter.held):  # use up what the lease holds
            await limiter.acquire(1)
        before = await script_calls(redis_server.url)
        clock.sleeps.clear()
        callers = asyncio.gather(*(limiter.acquire(1, max_wait=1.0) for _ in range(8)))
        await advance_after_replies(clock, limiter, callers)
        # The bucket holds 3: the first lease of 5 is due in 2 ms; it is saturated, so the
        # next lease of 5 was asked for at once (due 5 ms later): two requests, eight callers.
        assert await script_calls(redis_server.url) - before == 2
        assert clock.sleeps == pytest.approx([0.002] * 5 + [0.007] * 3, abs=1e-5)
        assert limiter.held == 2
    finally:
        await limiter.aclose()
        await limiter.client.aclose()


async def test_four_processes_with_leases_stay_within_3_percent_of_the_limit(
    redis_server: RedisServer, process_pool: ProcessPoolExecutor, namespace: str
) -> None:
    """4 real processes, 4 callers each, on Redis TIME: 4000/s for 2 s, 20 ms leases (10
    permits; the bound adds at most 4 * 2 * 10 = 80 = 1 % of the window's 8000). A burst of
    0.1 s: a loaded machine's stall of a few tens of ms must not waste permits."""
    rate, burst, duration, workers = 4000.0, 400, 2.0, 4
    ready, go = f"{namespace}:ready", f"{namespace}:go"
    args: Any = (redis_server.url, namespace, rate, burst, duration, ready, go, workers, 4, 0.02)
    runs = [
        asyncio.wrap_future(process_pool.submit(_procs.leased_limiter_run, *args))
        for _ in range(workers)
    ]
    client = redis_client(redis_server.url, socket_timeout=60)
    try:
        for _ in range(workers):
            assert await client.blpop([ready], timeout=60) is not None
        before = await script_calls(redis_server.url)
        start = time.time() + 0.2
        await client.rpush(go, *([repr(start)] * workers))
        counts = await asyncio.gather(*runs)
        calls = await script_calls(redis_server.url) - before
    finally:
        await client.aclose()
    achieved = (sum(counts) - burst) / duration
    print(f"\nleased limiter: per process {counts}, {achieved:.0f}/s of {rate:g}/s, {calls} calls")
    assert all(c > 0 for c in counts)
    assert abs(achieved - rate) <= 0.03 * rate
    assert calls * 5 <= sum(counts)  # batches: far fewer round trips than permits
