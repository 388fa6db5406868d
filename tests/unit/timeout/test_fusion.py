"""Deadline fusion: total timeout -> retry -> [non-blocking] -> attempt timeout, one timer."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from netra_resilience import (
    Outcome,
    Pipeline,
    PipelineBuilder,
    ResilienceContext,
    TimeoutRejectedError,
)
from netra_resilience.predicates import handle_result
from netra_resilience.retry import Backoff, RetryOptions
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from netra_resilience.timeout import DEADLINE, TimeoutOptions, TimeoutStrategy
from tests.unit.retry._support import HANG, Response, Script, Upstream


class PassThrough(Strategy):
    """A do-nothing strategy; ``may_block`` is set per test (None = undeclared)."""

    kind: ClassVar[str] = "pass"

    def __init__(self, may_block: bool | None, kind: str = "pass") -> None:
        if may_block is not None:
            self.may_block = may_block
        self.kind = kind  # type: ignore[misc]

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        return await callback(context, state)


class Add:
    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy

    def create_strategy(self, build: BuildContext) -> Strategy:
        return self.strategy


def constant(max_attempts: int = 5, delay: float = 1.0) -> RetryOptions:
    return RetryOptions(
        max_attempts=max_attempts, backoff=Backoff.CONSTANT, delay=delay, use_jitter=False
    )


def stack(
    clock: FakeClock,
    *,
    total: float | None = 25,
    attempt: float | None = 10,
    retry: RetryOptions | None = None,
    middle: Strategy | None = None,
    listener: RecordingListener | None = None,
) -> Pipeline:
    builder = PipelineBuilder("llm", clock=clock, telemetry=listener)
    builder.add_timeout(TimeoutOptions(timeout=total))
    builder.add_retry(retry or constant())
    if middle is not None:
        builder.add(Add(middle))
    builder.add_timeout(TimeoutOptions(timeout=attempt))
    return builder.build()


def fused(pipeline: Pipeline) -> bool:
    return pipeline.strategies[0].fused  # type: ignore[attr-defined,no-any-return]


def test_the_standard_shape_fuses(clock: FakeClock) -> None:
    pipeline = stack(clock)
    assert fused(pipeline)
    inner = pipeline.strategies[-1]
    assert isinstance(inner, TimeoutStrategy)
    assert not inner.fused


@pytest.mark.parametrize(
    ("middle", "expected"),
    [
        (PassThrough(may_block=False), True),
        (PassThrough(may_block=None, kind="circuit_breaker"), True),
        (PassThrough(may_block=True, kind="circuit_breaker"), False),
        (PassThrough(may_block=None), False),
        (PassThrough(may_block=True), False),
    ],
)
def test_only_non_blocking_strategies_may_sit_between(
    clock: FakeClock, middle: Strategy, expected: bool
) -> None:
    assert fused(stack(clock, middle=middle)) is expected


def test_shapes_that_do_not_fuse(clock: FakeClock) -> None:
    assert not fused(stack(clock, total=None))
    no_inner = (
        PipelineBuilder("llm", clock=clock)
        .add_timeout(TimeoutOptions(timeout=25))
        .add_retry(constant())
        .build()
    )
    assert not fused(no_inner)
    two_retries = (
        PipelineBuilder("llm", clock=clock)
        .add_timeout(TimeoutOptions(timeout=25))
        .add_retry(constant())
        .add_retry(constant())
        .add_timeout(TimeoutOptions(timeout=10))
        .build()
    )
    assert not fused(two_retries)
    no_retry = (
        PipelineBuilder("llm", clock=clock)
        .add_timeout(TimeoutOptions(timeout=25))
        .add_timeout(TimeoutOptions(timeout=10))
        .build()
    )
    assert not fused(no_retry)


async def test_one_timer_per_attempt(clock: FakeClock) -> None:
    fn = Script(Upstream, Upstream, "ok")
    result = await advance_until_done(clock, stack(clock).execute(fn))
    assert result == "ok"
    assert clock.timeouts == [10.0, 10.0, 10.0]  # three attempts, no timer for the total


async def test_total_deadline_across_hung_attempts_and_sleeps(
    clock: FakeClock, listener: RecordingListener
) -> None:
    ctx = ResilienceContext("op")
    fn = Script(HANG)
    pipeline = stack(clock, listener=listener)
    outcome = await advance_until_done(clock, pipeline.execute_outcome(fn, context=ctx))
    error = outcome.exception
    assert isinstance(error, TimeoutRejectedError)
    assert (error.timeout, error.dependency) == (25.0, "llm")
    # 0-10 attempt, 10-11 sleep, 11-21 attempt, 21-22 sleep, 22-25 attempt cut by the total.
    assert clock.timeouts == [10.0, 10.0, 3.0]
    assert clock.sleeps == [1.0, 1.0]
    assert clock.monotonic() - 1000.0 == 25.0
    assert fn.calls == 3
    assert [e.reason for e in ctx.degradation.history] == ["timeout"] * 3
    assert listener.names() == [
        "timeout",
        "retry",
        "timeout",
        "retry",
        "retries_exhausted",
        "timeout",
    ]
    assert [e.args.get("timeout") for e in listener.named("timeout")] == [10.0, 10.0, 25.0]


async def test_same_result_as_two_plain_timers(clock: FakeClock) -> None:
    """With a blocking strategy in between (no fusion) the call ends the same way."""
    plain_clock = FakeClock()
    plain = stack(plain_clock, middle=PassThrough(may_block=True))
    assert not fused(plain)
    a = await advance_until_done(clock, stack(clock).execute_outcome(Script(HANG)))
    b = await advance_until_done(plain_clock, plain.execute_outcome(Script(HANG)))
    for outcome in (a, b):
        assert isinstance(outcome.exception, TimeoutRejectedError)
        assert outcome.exception.timeout == 25.0
    assert clock.monotonic() == plain_clock.monotonic() == 1025.0
    assert plain_clock.timeouts == [25.0, 10.0, 10.0, 10.0]  # the total's own timer + 3
    assert clock.timeouts == [10.0, 10.0, 3.0]


async def test_retry_does_not_sleep_into_the_deadline(clock: FakeClock) -> None:
    fn = Script(Upstream)
    retry = RetryOptions(max_attempts=10, delay=1.0, use_jitter=False)  # 1, 2, 4, 8, ...
    outcome = await advance_until_done(
        clock, stack(clock, total=10, retry=retry).execute_outcome(fn)
    )
    error = outcome.exception
    assert isinstance(error, TimeoutRejectedError)
    assert error.timeout == 10.0
    assert isinstance(error.__cause__, Upstream)
    assert clock.sleeps == [1.0, 2.0, 4.0]  # at t=7 the next 8 s sleep would cross t=10
    assert clock.monotonic() - 1000.0 == 7.0
    assert fn.calls == 4


async def test_a_result_dropped_at_the_deadline_is_closed(clock: FakeClock) -> None:
    responses = [Response(503) for _ in range(4)]
    fn = Script(*[(lambda r=r: r) for r in responses])
    retry = RetryOptions(
        max_attempts=10,
        delay=1.0,
        use_jitter=False,
        should_handle=handle_result(lambda r: r.status == 503),
    )
    outcome = await advance_until_done(
        clock, stack(clock, total=10, retry=retry).execute_outcome(fn)
    )
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert outcome.exception.__cause__ is None
    assert fn.calls == 4
    assert [r.closed for r in responses] == [True, True, True, True]


async def test_a_hint_past_the_deadline_gives_up_at_once(clock: FakeClock) -> None:
    fn = Script(lambda: Upstream(retry_after=30.0))
    outcome = await advance_until_done(clock, stack(clock).execute_outcome(fn))
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_attempt_timeout_none_still_enforces_the_total(clock: FakeClock) -> None:
    pipeline = stack(clock, attempt=None)
    assert fused(pipeline)
    outcome = await advance_until_done(clock, pipeline.execute_outcome(Script(HANG)))
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert outcome.exception.timeout == 25.0
    assert clock.timeouts == [25.0]


async def test_success_within_the_total(clock: FakeClock) -> None:
    ctx = ResilienceContext("op")
    fn = Script(Upstream, "ok")
    assert await advance_until_done(clock, stack(clock).execute(fn, context=ctx)) == "ok"
    assert not ctx.degradation
    assert DEADLINE.get() is None


async def test_caller_cancel_under_fusion(clock: FakeClock) -> None:
    ctx = ResilienceContext("op")
    task = asyncio.ensure_future(stack(clock).execute_outcome(Script(HANG), context=ctx))
    await clock.advance(12)  # second attempt running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.reason for e in ctx.degradation.history] == ["timeout"]  # the first attempt only
    assert clock.pending == 0


async def test_concurrent_calls_sharing_one_context_keep_their_own_deadlines(
    clock: FakeClock,
) -> None:
    ctx = ResilienceContext("op")  # one request context, two parallel calls
    pipeline = stack(clock, total=10, attempt=100)
    first = asyncio.ensure_future(pipeline.execute_outcome(Script(HANG), context=ctx))
    await clock.advance(5)
    second = asyncio.ensure_future(pipeline.execute_outcome(Script(HANG), context=ctx))
    await clock.advance(5)
    assert first.done()
    assert not second.done()
    await clock.advance(5)
    assert second.done()
    for task in (first, second):
        assert isinstance(task.result().exception, TimeoutRejectedError)
    assert clock.timeouts == [10.0, 10.0]


async def test_a_nested_pipeline_does_not_spend_the_outer_budget(clock: FakeClock) -> None:
    nested = PipelineBuilder("db", clock=clock).add_timeout(TimeoutOptions(timeout=3)).build()

    async def calls_nested() -> Any:
        return await nested.execute(Script(HANG))

    outer = stack(clock, total=2, attempt=10)
    outcome = await advance_until_done(clock, outer.execute_outcome(calls_nested))
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert outcome.exception.dependency == "llm"
    assert clock.timeouts == [2.0, 3.0]  # the nested timeout kept its own 3 s


async def test_a_shared_instance_built_twice_stops_fusing(clock: FakeClock) -> None:
    pipeline = stack(clock)
    assert fused(pipeline)
    inner = pipeline.strategies[-1]
    PipelineBuilder("other", clock=clock).add_strategy(inner).build()
    assert not fused(pipeline)
    outcome = await advance_until_done(clock, pipeline.execute_outcome(Script(HANG)))
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert outcome.exception.timeout == 25.0
    assert clock.timeouts == [25.0, 10.0, 10.0, 10.0]
