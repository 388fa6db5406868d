"""TokenBucketLimiter on the fake clock: pacing, burst, weights, FIFO, bounded waits, pause."""

from __future__ import annotations

import asyncio
import math

import pytest

from netra_resilience import InvalidOptionsError, RateLimitRejectedError
from netra_resilience.rate_limiter import RateLimiter, TokenBucketLimiter
from netra_resilience.testing import FakeClock, advance_until_done


async def _acquire_at(
    clock: FakeClock,
    limiter: TokenBucketLimiter,
    start: float,
    permits: int = 1,
    max_wait: float | None = None,
) -> float:
    await limiter.acquire(permits, max_wait=max_wait)
    return round(clock.monotonic() - start, 9)


def test_is_a_rate_limiter(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=5, burst=2, clock=clock)
    assert isinstance(limiter, RateLimiter)
    assert (limiter.rate, limiter.burst, limiter.max_wait) == (5.0, 2, 0.0)
    assert limiter.paused_until is None
    assert "rate=5" in repr(limiter)


async def test_pacing_is_exact_on_the_fake_clock(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=1, clock=clock, max_wait=10)
    start = clock.monotonic()
    times = await advance_until_done(
        clock, asyncio.gather(*(_acquire_at(clock, limiter, start) for _ in range(6)))
    )
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], abs=1e-6)


async def test_burst_then_refill_at_rate(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=3, clock=clock)
    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire() == pytest.approx(1.0)
    await clock.advance(0.5)
    assert limiter.try_acquire() == pytest.approx(0.5)
    await clock.advance(0.5)
    assert limiter.try_acquire() == 0.0
    # A long idle period refills to the burst, never beyond it.
    await clock.advance(100)
    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire() == pytest.approx(1.0)


async def test_weighted_acquire(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=5, clock=clock)
    assert limiter.try_acquire(5) == 0.0
    assert limiter.try_acquire(5) == pytest.approx(0.5)
    assert limiter.try_acquire(2) == pytest.approx(0.2)
    start = clock.monotonic()
    took = await advance_until_done(clock, _acquire_at(clock, limiter, start, 5, max_wait=1))
    assert took == pytest.approx(0.5)
    assert limiter.try_acquire(0) == 0.0  # zero permits are always there


async def test_more_permits_than_burst_is_a_clear_immediate_rejection(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=5, clock=clock, max_wait=60)
    assert limiter.try_acquire(6) == math.inf
    with pytest.raises(RateLimitRejectedError, match="exceed the burst of 5") as info:
        await limiter.acquire(6)
    assert info.value.retry_after is None
    assert clock.sleeps == [] and clock.timeouts == []


async def test_immediate_reject_with_exact_retry_after_and_fresh_errors(
    clock: FakeClock,
) -> None:
    limiter = TokenBucketLimiter(rate=4, burst=1, clock=clock)  # max_wait 0 by default
    await limiter.acquire()
    errors = []
    for _ in range(3):
        with pytest.raises(RateLimitRejectedError) as info:
            await limiter.acquire()
        errors.append(info.value)
    assert [e.retry_after for e in errors] == pytest.approx([0.25, 0.25, 0.25])
    assert len({id(e) for e in errors}) == 3  # a fresh instance per rejection
    await clock.advance(0.1)
    with pytest.raises(RateLimitRejectedError) as info:
        await limiter.acquire()
    assert info.value.retry_after == pytest.approx(0.15)


async def test_bounded_wait_then_reject(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock, max_wait=1.5)
    start = clock.monotonic()
    await limiter.acquire()
    second = asyncio.ensure_future(_acquire_at(clock, limiter, start))
    await clock.settle()
    # The third would be served at t=2: beyond its 1.5 s, so it is refused at once.
    with pytest.raises(RateLimitRejectedError) as info:
        await limiter.acquire()
    assert info.value.retry_after == pytest.approx(2.0)
    assert await advance_until_done(clock, second) == pytest.approx(1.0)
    # An explicit max_wait overrides the default.
    with pytest.raises(RateLimitRejectedError):
        await limiter.acquire(max_wait=0)
    took = await advance_until_done(clock, _acquire_at(clock, limiter, start, max_wait=5))
    assert took == pytest.approx(2.0)


async def test_waiters_are_served_fifo_and_a_big_head_is_not_starved(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=5, clock=clock, max_wait=60)
    assert limiter.try_acquire(5) == 0.0
    start = clock.monotonic()
    order: list[tuple[str, float]] = []

    async def take(name: str, permits: int) -> None:
        await limiter.acquire(permits)
        order.append((name, round(clock.monotonic() - start, 6)))

    big = asyncio.ensure_future(take("big", 5))
    await clock.settle()
    smalls = [asyncio.ensure_future(take(f"s{i}", 1)) for i in range(3)]
    await clock.settle()
    await clock.advance(0.1)
    # One token is free, but the big request is at the head: nobody jumps the queue.
    assert limiter.try_acquire(1) > 0
    assert limiter.waiting == 4
    await advance_until_done(clock, asyncio.gather(big, *smalls))
    assert order == [("big", 0.5), ("s0", 0.6), ("s1", 0.7), ("s2", 0.8)]


async def test_only_the_head_waiter_sleeps(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=100, burst=1, clock=clock, max_wait=60)
    await limiter.acquire()
    tasks = [asyncio.ensure_future(limiter.acquire()) for _ in range(200)]
    await clock.settle()
    assert limiter.waiting == 200
    assert clock.pending == 1  # one timer for 200 waiters, not one wake-up each per tick
    await advance_until_done(clock, asyncio.gather(*tasks))
    assert len(clock.timeouts) == 200  # one sleep per acquisition: no spinning, no herd
    assert clock.monotonic() - 1000.0 == pytest.approx(2.0)


async def test_cancelled_waiters_leave_no_reservation(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock, max_wait=3600)
    await limiter.acquire()
    tasks = [asyncio.ensure_future(limiter.acquire()) for _ in range(1000)]
    await clock.settle()
    assert limiter.try_acquire() == pytest.approx(1001.0)
    for task in tasks:
        task.cancel()
    await clock.settle()
    assert all(task.cancelled() for task in tasks)
    assert limiter.waiting == 0
    assert clock.pending == 0
    assert limiter.try_acquire() == pytest.approx(1.0)  # the queue's demand is gone
    await clock.advance(1.0)
    assert limiter.try_acquire() == 0.0


async def test_cancelling_the_head_or_a_middle_waiter_moves_the_rest_up(
    clock: FakeClock,
) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock, max_wait=60)
    start = clock.monotonic()
    await limiter.acquire()
    a, b, c, d = (asyncio.ensure_future(_acquire_at(clock, limiter, start)) for _ in range(4))
    await clock.settle()
    b.cancel()  # in the middle
    await clock.settle()
    a.cancel()  # the head, while it sleeps
    await clock.settle()
    assert await advance_until_done(clock, asyncio.gather(c, d)) == pytest.approx([1.0, 2.0])
    assert a.cancelled() and b.cancelled()


async def test_waiter_cancelled_just_after_becoming_head_passes_its_turn_on(
    clock: FakeClock,
) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock, max_wait=60)
    start = clock.monotonic()
    await limiter.acquire()
    a, b, c = (asyncio.ensure_future(_acquire_at(clock, limiter, start)) for _ in range(3))
    await clock.settle()
    a.cancel()
    await asyncio.sleep(0)  # a leaves and hands the head to b, which has not run yet
    b.cancel()
    assert await advance_until_done(clock, c) == pytest.approx(1.0)
    await clock.settle()
    assert a.cancelled() and b.cancelled()
    assert limiter.waiting == 0


async def test_pause_blocks_every_caller_and_try_acquire_reports_it(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=10, clock=clock)
    start = clock.monotonic()
    limiter.pause(5)
    assert limiter.paused_until == pytest.approx(start + 5)
    # Paused, and the bucket refills from empty afterwards (no burst at the resume).
    assert limiter.try_acquire() == pytest.approx(5.1)
    with pytest.raises(RateLimitRejectedError) as info:
        await limiter.acquire()
    assert info.value.retry_after == pytest.approx(5.1)
    limiter.pause(2)  # never shortens
    assert limiter.paused_until == pytest.approx(start + 5)
    waiters = [_acquire_at(clock, limiter, start, max_wait=10) for _ in range(2)]
    assert await advance_until_done(clock, asyncio.gather(*waiters)) == pytest.approx([5.1, 5.2])
    assert limiter.paused_until is None


async def test_pause_extends_a_sleeping_head_and_rejects_waiters_it_makes_late(
    clock: FakeClock,
) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
    start = clock.monotonic()
    await limiter.acquire()
    patient = asyncio.ensure_future(_acquire_at(clock, limiter, start, max_wait=60))
    hasty = asyncio.ensure_future(_acquire_at(clock, limiter, start, max_wait=3))
    await clock.settle()
    await clock.advance(0.5)
    limiter.pause(10)  # until t=10.5: hasty (due at t=2) can no longer make its 3 s
    await clock.settle()
    assert hasty.done()
    assert isinstance(hasty.exception(), RateLimitRejectedError)
    assert hasty.exception().retry_after == pytest.approx(12.5 - 0.5)  # type: ignore[union-attr]
    assert clock.monotonic() - start == pytest.approx(0.5)  # rejected now, not at its deadline
    assert await advance_until_done(clock, patient) == pytest.approx(11.5)


async def test_invalid_arguments(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
    with pytest.raises(ValueError, match="permits"):
        limiter.try_acquire(-1)
    with pytest.raises(ValueError, match="max_wait"):
        await limiter.acquire(1, max_wait=-1)
    with pytest.raises(ValueError, match="max_wait"):
        await limiter.acquire(1, max_wait=math.nan)
    with pytest.raises(ValueError, match="pause"):
        limiter.pause(-1)
    limiter.pause(0)  # a no-op
    assert limiter.paused_until is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate": 0, "burst": 1}, "rate"),
        ({"rate": -2.0, "burst": 1}, "rate"),
        ({"rate": math.inf, "burst": 1}, "rate"),
        ({"rate": math.nan, "burst": 1}, "rate"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "burst": 1.5}, "burst"),
        ({"rate": 1, "burst": 1, "max_wait": -0.1}, "max_wait"),
    ],
)
def test_invalid_options_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidOptionsError, match=rf"TokenBucketLimiter\.{field}") as info:
        TokenBucketLimiter(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
