"""The shared loop timer of a fixed-duration timeout, driven without real time.

``loop.time`` is replaced by a counter the test moves, and the queue's timer callback is
called by hand: expiry order, re-arming, out-of-order deadlines and caller cancels are then
deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from netra_resilience import PipelineBuilder, TimeoutRejectedError
from netra_resilience.timeout import DeadlineQueue, TimeoutOptions, TimeoutStrategy


class LoopTime:
    """Moves ``loop.time()`` by hand and records the handles armed with ``call_at``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.armed: list[tuple[float, Callable[[], None]]] = []
        monkeypatch.setattr(loop, "time", lambda: self.now)

        def call_at(when: float, callback: Callable[..., Any], *args: Any) -> None:
            self.armed.append((when, callback))

        monkeypatch.setattr(loop, "call_at", call_at)

    def fire(self) -> None:
        _, callback = self.armed.pop(0)
        callback()


@pytest.fixture
async def loop_time(monkeypatch: pytest.MonkeyPatch) -> LoopTime:
    return LoopTime(asyncio.get_running_loop(), monkeypatch)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_timer_serves_many_calls_and_expires_them_in_order(loop_time: LoopTime) -> None:
    pipeline = PipelineBuilder("dep").add_timeout(TimeoutOptions(timeout=10)).build()
    hang = asyncio.Event()
    tasks = []
    for start in (0.0, 1.0, 2.0):
        loop_time.now = start
        tasks.append(asyncio.ensure_future(pipeline.execute_outcome(hang.wait)))
        await settle()
    assert [when for when, _ in loop_time.armed] == [10.0]  # one handle for three calls

    loop_time.now = 10.5
    loop_time.fire()
    await settle()
    assert tasks[0].done() and isinstance(tasks[0].result().exception, TimeoutRejectedError)
    assert not tasks[1].done() and not tasks[2].done()
    assert [when for when, _ in loop_time.armed] == [11.0]  # re-armed for the next deadline

    hang.set()  # the other two finish in time: their results are kept
    await settle()
    assert [t.result().exception for t in tasks[1:]] == [None, None]
    loop_time.now = 11.0
    loop_time.fire()  # nothing left: the timer goes quiet
    assert loop_time.armed == []


async def test_back_to_back_calls_never_rearm_the_timer(loop_time: LoopTime) -> None:
    pipeline = PipelineBuilder("dep").add_timeout(TimeoutOptions(timeout=30)).build()

    async def ok() -> int:
        return 1

    for i in range(100):
        loop_time.now = i * 0.01
        assert await pipeline.execute(ok) == 1
    assert len(loop_time.armed) == 1
    strategy = pipeline.find(TimeoutStrategy)
    assert strategy is not None and strategy._queue is not None and len(strategy._queue) == 0


async def test_caller_cancel_stays_cancelled_and_releases_the_entry(loop_time: LoopTime) -> None:
    pipeline = PipelineBuilder("dep").add_timeout(TimeoutOptions(timeout=10)).build()
    task = asyncio.ensure_future(pipeline.execute_outcome(asyncio.Event().wait))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    strategy = pipeline.find(TimeoutStrategy)
    assert strategy is not None and strategy._queue is not None and len(strategy._queue) == 0


async def test_an_out_of_order_deadline_gets_its_own_timer(loop_time: LoopTime) -> None:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop)
    task = asyncio.current_task()
    assert task is not None
    first = queue.add(task, 20.0)
    assert first is not None
    assert queue.add(task, 5.0) is None  # earlier than the newest: caller arms its own
    queue.release(first)
    assert len(queue) == 0


async def test_a_swallowed_expiry_keeps_the_result_and_balances_the_cancel_count(
    loop_time: LoopTime,
) -> None:
    pipeline = PipelineBuilder("dep").add_timeout(TimeoutOptions(timeout=10)).build()

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "finished anyway"
        return "unreachable"

    task = asyncio.ensure_future(pipeline.execute_outcome(stubborn))
    await settle()
    loop_time.now = 10.0
    loop_time.fire()
    outcome = await task
    assert outcome.result == "finished anyway"
    assert task.cancelling() == 0


async def test_a_deadline_before_the_pending_timer_is_refused_on_an_empty_queue(
    loop_time: LoopTime,
) -> None:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop)
    task = asyncio.current_task()
    assert task is not None
    first = queue.add(task, 20.0)
    assert first is not None
    queue.release(first)  # the queue is empty but its timer stays armed for 20.0
    assert len(queue) == 0 and [when for when, _ in loop_time.armed] == [20.0]
    # Queued now, a deadline at 5.0 would only be served when that timer fires (15 s late).
    assert queue.add(task, 5.0) is None
    later = queue.add(task, 25.0)
    assert later is not None  # at or after the pending timer: still shared
    queue.release(later)
