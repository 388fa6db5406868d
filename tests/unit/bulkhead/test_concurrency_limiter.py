"""ConcurrencyLimiter: seats, FIFO queue, bounds, queue timeout, and cancellation without leaks."""

from __future__ import annotations

import asyncio
import math
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import pytest

from netra_resilience import BulkheadRejectedError, InvalidOptionsError
from netra_resilience.bulkhead import ConcurrencyLimiter
from netra_resilience.testing import FakeClock


async def test_free_seats_are_taken_without_waiting(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=2, clock=clock)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    assert (limiter.in_flight, limiter.queued, limiter.max_concurrency) == (2, 0, 2)
    limiter.release()
    await limiter.acquire()
    assert limiter.in_flight == 2
    limiter.release()
    limiter.release()
    assert limiter.in_flight == 0
    with pytest.raises(RuntimeError, match="without a held seat"):
        limiter.release()
    assert "max_concurrency=2" in repr(limiter)


async def test_seat_context_manager(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, clock=clock)
    async with limiter.seat():
        assert limiter.in_flight == 1
    assert limiter.in_flight == 0
    with pytest.raises(KeyError):
        async with limiter.seat():
            raise KeyError("boom")
    assert limiter.in_flight == 0


async def test_queue_is_fifo(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=5, clock=clock)
    await limiter.acquire()
    order: list[str] = []

    async def worker(name: str) -> None:
        async with limiter.seat():
            order.append(name)
            await clock.sleep(1)

    tasks = [asyncio.ensure_future(worker(name)) for name in "abcde"]
    await clock.settle()
    assert limiter.queued == 5
    assert not limiter.try_acquire()  # a newcomer cannot overtake the queue
    limiter.release()
    for _ in range(5):
        await clock.advance(1)
    await asyncio.gather(*tasks)
    assert order == list("abcde")
    assert (limiter.in_flight, limiter.queued) == (0, 0)


async def test_full_queue_rejects_at_once_with_a_fresh_error(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=1, clock=clock)
    await limiter.acquire()
    queued = asyncio.ensure_future(limiter.acquire())
    await clock.settle()
    errors = []
    for _ in range(2):
        with pytest.raises(BulkheadRejectedError, match="1 in flight, 1 queued") as info:
            await limiter.acquire()
        errors.append(info.value)
    assert errors[0] is not errors[1]
    assert clock.timeouts == []
    limiter.release()
    await queued
    assert (limiter.in_flight, limiter.queued) == (1, 0)


async def test_no_queue_rejects_when_full(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, clock=clock)
    await limiter.acquire()
    with pytest.raises(BulkheadRejectedError):
        await limiter.acquire()


async def test_queue_timeout_rejects_at_the_deadline(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=3, queue_timeout=2, clock=clock)
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await clock.advance(1.999)
    assert not waiter.done()
    await clock.advance(0.001)
    with pytest.raises(BulkheadRejectedError, match="timed out after 2s"):
        await waiter
    assert clock.timeouts == [2.0]
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()
    assert limiter.try_acquire()


async def test_ten_thousand_cancelled_waiters_leak_nothing(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=10_000, clock=clock)
    await limiter.acquire()
    tasks = [asyncio.ensure_future(limiter.acquire()) for _ in range(10_000)]
    await clock.settle()
    assert limiter.queued == 10_000
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks)
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    assert limiter.try_acquire()  # a new caller gets a seat at once


async def test_release_while_cancellations_are_pending_skips_the_cancelled(
    clock: FakeClock,
) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=10_000, clock=clock)
    await limiter.acquire()
    tasks = [asyncio.ensure_future(limiter.acquire()) for _ in range(10_000)]
    await clock.settle()
    for task in tasks:
        task.cancel()
    limiter.release()  # before any cancelled waiter ran its cleanup
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (limiter.in_flight, limiter.queued) == (0, 0)


async def test_cancel_at_the_moment_of_hand_off_passes_the_seat_on(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=2, clock=clock)
    await limiter.acquire()
    first = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    await clock.settle()
    limiter.release()  # hands the seat to `first`...
    first.cancel()  # ...which is cancelled before it resumes
    await clock.settle()
    assert first.cancelled()
    assert second.done() and second.exception() is None  # the seat went on to `second`
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()
    assert limiter.in_flight == 0


class _ManualTimeout:
    """A clock.timeout() whose expiry the test fires by hand (to hit an exact race)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.expired = False

    async def __aenter__(self) -> None:
        self.task = asyncio.current_task()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.expired and exc_type is asyncio.CancelledError:
            assert self.task is not None
            self.task.uncancel()
            raise TimeoutError

    def expire(self) -> None:
        self.expired = True
        assert self.task is not None
        self.task.cancel()


class _ManualClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.manual: list[_ManualTimeout] = []

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[Any]:  # type: ignore[override]
        self.manual.append(_ManualTimeout())
        return self.manual[-1]


async def test_queue_timeout_at_the_moment_of_hand_off_keeps_the_seat() -> None:
    clock = _ManualClock()
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=1, queue_timeout=1, clock=clock)
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await clock.settle()
    limiter.release()  # the seat is handed over...
    clock.manual[0].expire()  # ...and the queue timeout fires before the waiter resumes
    await waiter  # no rejection: the waiter owns the seat it was given
    assert (limiter.in_flight, limiter.queued) == (1, 0)


async def test_queue_timeout_alone_rejects_via_the_manual_clock() -> None:
    clock = _ManualClock()
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=1, queue_timeout=1, clock=clock)
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await clock.settle()
    clock.manual[0].expire()
    with pytest.raises(BulkheadRejectedError):
        await waiter
    assert (limiter.in_flight, limiter.queued) == (1, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": 1, "max_queue": -1}, "max_queue"),
        ({"max_concurrency": 1, "queue_timeout": 0}, "queue_timeout"),
        ({"max_concurrency": 1, "queue_timeout": -1}, "queue_timeout"),
        ({"max_concurrency": 1, "queue_timeout": math.nan}, "queue_timeout"),
    ],
)
def test_invalid_options_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError, match=rf"ConcurrencyLimiter\.{field}") as info:
        ConcurrencyLimiter(**kwargs)
    assert info.value.field == field
