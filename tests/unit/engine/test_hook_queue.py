"""The background hook queue: bounded, drop-oldest with a counter, drained on shutdown."""

from __future__ import annotations

import asyncio

from netra_resilience.engine import HookQueue
from netra_resilience.testing import FakeClock, advance_until_done


async def test_full_queue_drops_the_oldest_job_and_counts_it(clock: FakeClock) -> None:
    release = asyncio.Event()
    done: list[int] = []

    async def job(n: int) -> None:
        if n == 0:
            await release.wait()
        done.append(n)

    queue = HookQueue(max_size=2, workers=1, clock=clock)
    queue.offer(job, 0)
    await clock.settle()  # the worker takes job 0 and blocks on it
    for n in (1, 2, 3):
        queue.offer(job, n)
    assert queue.dropped == 1 and len(queue) == 2
    release.set()
    await queue.aclose()
    assert done == [0, 2, 3] and queue.processed == 3


async def test_close_drains_then_refuses_new_jobs(clock: FakeClock) -> None:
    done: list[int] = []

    async def job(n: int) -> None:
        await clock.sleep(1.0)
        done.append(n)

    queue = HookQueue(max_size=10, workers=2, clock=clock)
    for n in range(4):
        queue.offer(job, n)
    await advance_until_done(clock, queue.aclose(within=10.0))
    assert sorted(done) == [0, 1, 2, 3] and queue.abandoned == 0
    queue.offer(job, 99)
    assert queue.dropped == 1


async def test_drain_deadline_abandons_what_is_left(clock: FakeClock) -> None:
    async def hang(n: int) -> None:
        await asyncio.Event().wait()

    queue = HookQueue(max_size=10, workers=1, clock=clock)
    for n in range(3):
        queue.offer(hang, n)
    await advance_until_done(clock, queue.aclose(within=2.0))
    assert queue.abandoned == 2 and clock.pending == 0


async def test_a_failing_job_does_not_stop_the_worker(clock: FakeClock) -> None:
    done: list[int] = []

    async def job(n: int) -> None:
        if n == 0:
            raise RuntimeError("boom")
        done.append(n)

    queue = HookQueue(workers=1, clock=clock)
    queue.offer(job, 0)
    queue.offer(job, 1)
    await queue.aclose()
    assert done == [1] and queue.processed == 2


async def test_a_job_raising_cancelled_error_by_itself_does_not_kill_the_worker(
    clock: FakeClock,
) -> None:
    # A hook's client may raise CancelledError on its own (a closing socket); only a
    # cancellation of the worker itself may stop it, or background hooks die for good.
    done: list[int] = []

    async def job(n: int) -> None:
        if n < 2:
            raise asyncio.CancelledError
        done.append(n)

    queue = HookQueue(max_size=10, workers=1, clock=clock)
    for n in range(4):
        queue.offer(job, n)
    await clock.settle()
    assert done == [2, 3] and len(queue) == 0
    await queue.aclose()
    assert queue.abandoned == 0
