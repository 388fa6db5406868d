"""Leases of the shared limiter on a real Redis: batches, the accuracy bound, give-backs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from netra_resilience import RateLimitRejectedError
from netra_resilience.integrations.redis import RedisRateLimiter, redis_breaker, redis_client
from netra_resilience.testing import FakeClock
from tests.integration.state import _procs
from tests.integration.state.helpers import (
    assert_shared_limit,
    closing_limiters,
    released_together,
)
from tests.servers import RedisServer

Replica = Callable[..., RedisRateLimiter]


@pytest.fixture
async def replica(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> AsyncIterator[Replica]:
    """Builds one process's limiter on this test's key: its own client, the fake clock's
    wall time sent to Redis; all closed after the test."""
    made: list[RedisRateLimiter] = []

    def build(**options: Any) -> RedisRateLimiter:
        client = redis_client(redis_server.url)
        breaker = redis_breaker(client, clock=clock)
        limiter = RedisRateLimiter(
            client, breaker=breaker, key=namespace, use_redis_time=False, **options
        )
        made.append(limiter)
        return limiter

    async with closing_limiters(made):
        yield build


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
def replicas(replica: Replica) -> list[RedisRateLimiter]:
    """Four replicas of 2000/s, burst 40, 20 ms leases: two leases of at most 5 each."""
    return [replica(rate=2000, burst=40, replicas=4, lease_window=0.02) for _ in range(4)]


async def test_a_busy_process_takes_permits_in_batches(
    redis_server: RedisServer, replica: Replica, clock: FakeClock
) -> None:
    limiter = replica(rate=1000, burst=100, lease_window=0.05)
    assert limiter.lease_max == 25  # rate * lease_window / (2 leases * replicas)
    before = await script_calls(redis_server.url)
    for _ in range(1000):  # as fast as the rate allows: 1 ms apart on the clock
        await limiter.acquire(1)
        await clock.advance(0.001)
    calls = await script_calls(redis_server.url) - before
    # 1, 2, 4, 8, 16, then 25 at a time: about 44 round trips instead of 1000.
    assert calls <= 60, calls


async def test_at_a_low_rate_every_acquisition_asks_redis(
    redis_server: RedisServer, replica: Replica
) -> None:
    limiter = replica(rate=50, burst=10)
    assert limiter.lease_max == 1  # 50/s * 10 ms / 2 < 1: no batches, exact as before
    before = await script_calls(redis_server.url)
    for _ in range(10):
        await limiter.acquire(1)
    assert await script_calls(redis_server.url) - before == 10
    assert limiter.held == 0


async def test_without_leases_concurrent_callers_ask_redis_concurrently(
    redis_server: RedisServer, replica: Replica
) -> None:
    """No batches to share (lease_window=0): callers do not queue behind one request."""
    limiter = replica(rate=1000, burst=100, lease_window=0)
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
    before = await script_calls(redis_server.url)
    await asyncio.gather(*(limiter.acquire(1) for _ in range(8)))
    assert await script_calls(redis_server.url) - before == 8
    assert most == 8  # all eight round trips were on their way at once
    assert limiter.held == 0


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


async def test_unused_permits_go_back_to_the_bucket(replica: Replica) -> None:
    a, b = (replica(rate=100, burst=16, lease_window=0.1) for _ in range(2))
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


async def _granted(limiter: RedisRateLimiter) -> bool:
    try:
        await limiter.acquire(1, max_wait=0)
    except RateLimitRejectedError:
        return False
    return True


async def test_an_expired_lease_is_not_used_and_its_rest_goes_back(
    replica: Replica, clock: FakeClock
) -> None:
    a, b = (replica(rate=100, burst=16, lease_window=0.1) for _ in range(2))
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


async def test_a_pause_drops_the_lease(replica: Replica) -> None:
    limiter = replica(rate=100, burst=16, lease_window=0.1)
    for _ in range(4):
        await limiter.acquire(1)
    assert limiter.held == 3
    limiter.pause(1.0)  # an upstream 429: nothing is handed out locally either
    assert limiter.held == 0
    assert limiter.try_acquire(1) > 0.0
    await limiter.drain()
    with pytest.raises(RateLimitRejectedError):
        await limiter.acquire(1, max_wait=0)


async def test_waiting_callers_share_one_lease_request(
    redis_server: RedisServer, replica: Replica, clock: FakeClock
) -> None:
    limiter = replica(rate=1000, burst=10, lease_window=0.05)
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


async def test_a_permit_from_a_due_lease_is_handed_out_without_suspending(
    replica: Replica,
) -> None:
    limiter = replica(rate=1000, burst=100, lease_window=0.05)
    for _ in range(4):
        await limiter.acquire(1)  # leases of 1, 2, 4: 3 held, due now
    assert limiter.held == 3
    step = limiter.acquire(1).__await__()
    with pytest.raises(StopIteration):
        next(step)  # done at its first step: no Future, no trip through the event loop
    assert limiter.held == 2
    assert limiter.try_acquire(1) == 0.0
    assert limiter.held == 1


async def test_callers_in_line_for_a_lease_request_go_in_order_and_a_cancelled_one_leaves(
    replica: Replica, clock: FakeClock
) -> None:
    limiter = replica(rate=1000, burst=100, lease_window=0.05)
    script, gate = limiter._script, asyncio.Event()

    async def held_back(**kwargs: Any) -> Any:
        await gate.wait()
        return await script(**kwargs)

    limiter._script = held_back  # type: ignore[assignment]
    done: list[str] = []

    async def caller(name: str) -> None:
        await limiter.acquire(1)
        done.append(name)

    callers = {name: asyncio.ensure_future(caller(name)) for name in "ABCD"}
    await clock.settle()  # A's request is on its way; B, C and D wait in line for it
    callers["C"].cancel()
    gate.set()
    await asyncio.wait_for(asyncio.gather(*(callers[name] for name in "ABD")), timeout=10)
    assert done == ["A", "B", "D"]  # B's own request came next (A's lease held one permit)
    assert callers["C"].cancelled()
    assert limiter.held == 0  # B's lease of 2: one for B, one for D


async def test_four_processes_with_leases_stay_within_3_percent_of_the_limit(
    redis_server: RedisServer, process_pool: ProcessPoolExecutor, namespace: str
) -> None:
    """4 real processes, 4 callers each, on Redis TIME: 4000/s for 2 s, 20 ms leases (10
    permits; the bound adds at most 4 * 2 * 10 = 80 = 1 % of the window's 8000). A burst of
    0.1 s: a loaded machine's stall of a few tens of ms must not waste permits."""
    rate, burst, options = 4000.0, 400, {"replicas": 4, "lease_window": 0.02}
    before = await script_calls(redis_server.url)
    start, runs, redis_wait = await released_together(
        redis_server, process_pool, namespace, _procs.limiter_run, rate, burst, 2.0, options, 4
    )
    calls = await script_calls(redis_server.url) - before
    assert_shared_limit(start, runs, redis_wait, rate=rate, burst=burst, held=4 * 2 * 10)
    assert calls * 5 <= sum(run["granted"] for run in runs)  # far fewer round trips than permits
