"""The SystemClock per-call path (one loop.call_at handle), driven without real time.

``loop.call_at`` is wrapped so the test holds the timer callback and fires it by hand: every
combination of "our timer fired" and "the caller cancelled" is then deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from netra_resilience import (
    Outcome,
    Pipeline,
    PipelineBuilder,
    ResilienceContext,
    TimeoutRejectedError,
)
from netra_resilience.timeout import TimeoutOptions


class Timers:
    """Captures the callbacks given to ``loop.call_at`` (the real handle is still created)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fired: list[Callable[[], None]] = []
        self.handles: list[asyncio.TimerHandle] = []
        real = loop.call_at

        def call_at(when: float, callback: Callable[..., Any], *args: Any, **kw: Any) -> Any:
            handle = real(when, callback, *args, **kw)
            self.fired.append(callback)
            self.handles.append(handle)
            return handle

        monkeypatch.setattr(loop, "call_at", call_at)

    def fire(self) -> None:
        self.fired[-1]()


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> Timers:
    return Timers(asyncio.get_running_loop(), monkeypatch)


async def hang() -> None:
    await asyncio.Event().wait()


def pipeline() -> Pipeline:
    # A per-call duration (generator) takes the one-handle-per-call path tested here; a fixed
    # duration shares a loop timer across calls (test_deadline_queue.py).
    options = TimeoutOptions(timeout=60, timeout_generator=lambda _ctx: 60)
    return PipelineBuilder("dep").add_timeout(options).build()


async def start(ctx: ResilienceContext) -> asyncio.Task[Outcome[None]]:
    task = asyncio.ensure_future(pipeline().execute_outcome(hang, context=ctx))
    for _ in range(3):
        await asyncio.sleep(0)
    return task


async def test_own_expiry(timers: Timers) -> None:
    ctx = ResilienceContext("op")
    task = await start(ctx)
    timers.fire()
    outcome = await task
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert outcome.exception.timeout == 60.0
    assert ctx.degradation.as_dict() == {"dep": "timeout"}
    assert task.cancelling() == 0
    assert timers.handles[-1].cancelled()


async def test_caller_cancel(timers: Timers) -> None:
    ctx = ResilienceContext("op")
    task = await start(ctx)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not ctx.degradation
    assert timers.handles[-1].cancelled()


@pytest.mark.parametrize("timer_first", [True, False])
async def test_caller_cancel_wins_when_both_happen(timers: Timers, timer_first: bool) -> None:
    ctx = ResilienceContext("op")
    task = await start(ctx)
    if timer_first:
        timers.fire()
        task.cancel()
    else:
        task.cancel()
        timers.fire()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not ctx.degradation


async def test_swallowed_cancellation_keeps_the_result_and_balances_the_count(
    timers: Timers,
) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "finished anyway"
        return "never"

    async def run() -> tuple[Any, int]:
        outcome = await pipeline().execute_outcome(stubborn)
        task = asyncio.current_task()
        assert task is not None
        return outcome, task.cancelling()

    task = asyncio.ensure_future(run())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    timers.fire()
    outcome, cancelling = await task
    assert outcome.result == "finished anyway"
    assert cancelling == 0


async def test_an_earlier_pending_cancel_is_not_taken_for_ours(timers: Timers) -> None:
    """A task that already swallowed one cancel (count 1) still sees our expiry as ours."""

    async def run() -> Any:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # swallowed without uncancel(): cancelling() stays 1
        return await pipeline().execute_outcome(hang)

    task = asyncio.ensure_future(run())
    for _ in range(4):
        await asyncio.sleep(0)
    timers.fire()
    outcome = await task
    assert isinstance(outcome.exception, TimeoutRejectedError)


async def test_completion_cancels_the_timer(timers: Timers) -> None:
    async def quick() -> int:
        return 7

    assert await pipeline().execute(quick) == 7
    assert timers.handles[-1].cancelled()
