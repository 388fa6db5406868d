"""BulkheadStrategy through PipelineBuilder: rejections, degradation, seats always released."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import (
    BulkheadRejectedError,
    InvalidOptionsError,
    PipelineBuilder,
    ResilienceContext,
)
from netra_resilience.bulkhead import (
    BulkheadOptions,
    BulkheadStrategy,
    ConcurrencyLimiter,
    OnBulkheadRejectedArgs,
)
from netra_resilience.testing import FakeClock, RecordingListener


def _pipeline(clock: FakeClock, listener: RecordingListener | None = None, **options: Any) -> Any:
    return (
        PipelineBuilder("search", clock=clock, telemetry=listener)
        .add_bulkhead(BulkheadOptions(**options))
        .build()
    )


def _limiter(pipeline: Any) -> ConcurrencyLimiter:
    strategy = pipeline.find(BulkheadStrategy)
    assert strategy is not None
    return strategy.limiter  # type: ignore[no-any-return]


async def test_full_bulkhead_is_an_outcome_marked_bulkhead_full(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline = _pipeline(clock, listener, max_concurrency=1)
    release = asyncio.Event()

    async def hold() -> str:
        await release.wait()
        return "done"

    holder = asyncio.ensure_future(pipeline.execute(hold))
    await clock.settle()
    ctx = ResilienceContext("query")
    outcome = await pipeline.execute_outcome(hold, context=ctx)
    assert isinstance(outcome.exception, BulkheadRejectedError)
    assert outcome.exception.dependency == "search"
    assert outcome.exception.retry_after is None
    assert ctx.degradation.as_dict() == {"search": "bulkhead_full"}
    [event] = listener.named("bulkhead_rejected")
    assert event.operation_key == "query"
    assert event.args == {"in_flight": 1, "queued": 0}
    release.set()
    assert await holder == "done"
    assert _limiter(pipeline).in_flight == 0
    assert pipeline.strategies[0].kind == "bulkhead" and BulkheadStrategy.may_block is True


async def test_queue_timeout_through_the_pipeline(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, max_concurrency=1, max_queue=1, queue_timeout=timedelta(seconds=3))
    started = asyncio.Event()

    async def hold() -> None:
        started.set()
        await clock.sleep(10)

    holder = asyncio.ensure_future(pipeline.execute(hold))
    await started.wait()
    ctx = ResilienceContext()
    waiter = asyncio.ensure_future(pipeline.execute_outcome(hold, context=ctx))
    await clock.advance(3)
    outcome = await waiter
    assert isinstance(outcome.exception, BulkheadRejectedError)
    assert ctx.degradation.reason("search") == "bulkhead_full"
    await clock.advance(7)
    await holder
    assert (_limiter(pipeline).in_flight, _limiter(pipeline).queued) == (0, 0)


async def test_seat_is_released_on_exception_and_on_cancel(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, max_concurrency=1, max_queue=1)
    limiter = _limiter(pipeline)

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await pipeline.execute(fail)
    assert limiter.in_flight == 0

    async def hang() -> None:
        await asyncio.Event().wait()

    running = asyncio.ensure_future(pipeline.execute(hang))
    queued = asyncio.ensure_future(pipeline.execute(hang))
    await clock.settle()
    assert (limiter.in_flight, limiter.queued) == (1, 1)
    queued.cancel()
    running.cancel()
    await asyncio.gather(running, queued, return_exceptions=True)
    assert running.cancelled() and queued.cancelled()
    assert (limiter.in_flight, limiter.queued) == (0, 0)


async def test_queued_calls_run_in_fifo_order(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, max_concurrency=2, max_queue=10)
    order: list[int] = []

    async def work(i: int) -> None:
        order.append(i)
        await clock.sleep(1)

    tasks = [asyncio.ensure_future(pipeline.execute(work, i)) for i in range(8)]
    await clock.settle()
    assert order == [0, 1]
    for _ in range(4):
        await clock.advance(1)
    await asyncio.gather(*tasks)
    assert order == list(range(8))


async def test_a_shared_limiter_spans_pipelines(clock: FakeClock) -> None:
    shared = ConcurrencyLimiter(max_concurrency=1, clock=clock)
    first = _pipeline(clock, limiter=shared)
    second = _pipeline(clock, limiter=shared)
    assert _limiter(first) is _limiter(second) is shared
    async with shared.seat():
        outcome = await second.execute_outcome(asyncio.sleep, 0)
    assert isinstance(outcome.exception, BulkheadRejectedError)


async def test_each_build_gets_its_own_limiter_on_the_pipeline_clock(clock: FakeClock) -> None:
    options = BulkheadOptions(max_concurrency=3, max_queue=2, queue_timeout=1.5)
    a = PipelineBuilder("a", clock=clock).add_bulkhead(options).build()
    b = PipelineBuilder("b", clock=clock).add_bulkhead(options).build()
    limiter = _limiter(a)
    assert limiter is not _limiter(b)
    assert (limiter.max_concurrency, limiter.max_queue, limiter.queue_timeout) == (3, 2, 1.5)


async def test_on_rejected_sync_async_and_broken(clock: FakeClock) -> None:
    seen: list[OnBulkheadRejectedArgs] = []

    async def record(args: OnBulkheadRejectedArgs) -> None:
        seen.append(args)

    def broken(args: OnBulkheadRejectedArgs) -> None:
        raise RuntimeError("observer bug")

    for callback in (record, seen.append, broken):
        limiter = ConcurrencyLimiter(max_concurrency=1, clock=clock)
        pipeline = _pipeline(clock, limiter=limiter, on_rejected=callback)
        await limiter.acquire()
        with pytest.raises(BulkheadRejectedError):
            await pipeline.execute(asyncio.sleep, 0)
    assert len(seen) == 2
    assert seen[0].error.dependency == "search"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "max_concurrency"),
        ({"max_concurrency": 0}, "max_concurrency"),
        (
            {"max_concurrency": 2, "limiter": ConcurrencyLimiter(max_concurrency=1)},
            "max_concurrency",
        ),
        ({"max_concurrency": 1, "max_queue": -1}, "max_queue"),
        ({"max_concurrency": 1, "queue_timeout": -2}, "queue_timeout"),
        ({"limiter": ConcurrencyLimiter(max_concurrency=1), "max_queue": 3}, "max_queue"),
        ({"limiter": ConcurrencyLimiter(max_concurrency=1), "queue_timeout": 1}, "queue_timeout"),
        ({"limiter": "seats"}, "limiter"),
        ({"max_concurrency": 1, "on_rejected": 5}, "on_rejected"),
    ],
)
def test_invalid_options_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError, match=rf"BulkheadOptions\.{field}") as info:
        BulkheadOptions(**kwargs)
    assert info.value.field == field
