"""What is (never) retried, cancellation, closing discarded results, hooks, telemetry, tenacity."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tenacity

from netra_resilience import (
    BrokenCircuitError,
    BulkheadRejectedError,
    IsolatedCircuitError,
    Outcome,
    PipelineBuilder,
    RateLimitRejectedError,
    ResilienceContext,
    TimeoutRejectedError,
)
from netra_resilience.predicates import ANY_EXCEPTION, handle_result
from netra_resilience.retry import OnRetryArgs, RetryOptions
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.testing import (
    FakeClock,
    RecordingListener,
    advance_until_done,
    constant_random,
)
from tests.unit.retry._support import AsyncResponse, BrokenClose, Response, Script, Upstream


def fast(**kwargs: Any) -> RetryOptions:
    """Exponential from 1 s without jitter: sleeps 1, 2, 4, ..."""
    return RetryOptions(delay=1.0, use_jitter=False, **kwargs)


def pipeline(
    clock: FakeClock, options: RetryOptions, listener: RecordingListener | None = None
) -> Any:
    return (
        PipelineBuilder("dep", clock=clock, random=constant_random(), telemetry=listener)
        .add_retry(options)
        .build()
    )


async def test_success_is_not_retried_and_unhandled_outcomes_are_returned(clock: FakeClock) -> None:
    fn = Script("ok")
    assert await pipeline(clock, RetryOptions()).execute(fn) == "ok"
    assert fn.calls == 1
    fn = Script(Upstream, "ok")
    outcome = await advance_until_done(clock, pipeline(clock, RetryOptions()).execute_outcome(fn))
    assert outcome.result == "ok"
    assert fn.calls == 2


async def test_max_attempts_one_never_retries(clock: FakeClock) -> None:
    fn = Script(Upstream)
    outcome = await pipeline(clock, RetryOptions(max_attempts=1)).execute_outcome(fn)
    assert isinstance(outcome.exception, Upstream)
    assert fn.calls == 1


async def test_cancel_during_the_sleep_propagates_and_is_not_retried(clock: FakeClock) -> None:
    fn = Script(Upstream)
    task = asyncio.ensure_future(pipeline(clock, fast()).execute_outcome(fn))
    await clock.settle()
    assert clock.sleeps == [1.0]  # the retry is sleeping
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.advance(60)
    assert fn.calls == 1
    assert clock.pending == 0


async def test_cancelled_error_from_the_callback_is_not_retried(clock: FakeClock) -> None:
    fn = Script(asyncio.CancelledError, "ok")
    options = fast(should_handle=lambda o: True)
    with pytest.raises(asyncio.CancelledError):
        await pipeline(clock, options).execute_outcome(fn)
    assert fn.calls == 1
    assert clock.sleeps == []


class CancelledOutcome(Strategy):
    """A (misbehaving) inner strategy that returns a CancelledError inside an outcome."""

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        await callback(context, state)
        return Outcome(None, asyncio.CancelledError())


async def test_cancelled_error_inside_an_outcome_is_not_retried(clock: FakeClock) -> None:
    fn = Script("ok")
    built = (
        PipelineBuilder("dep", clock=clock)
        .add_retry(fast(should_handle=lambda o: True))
        .add_strategy(CancelledOutcome())
        .build()
    )
    outcome = await built.execute_outcome(fn)
    assert isinstance(outcome.exception, asyncio.CancelledError)
    assert fn.calls == 1


@pytest.mark.parametrize(
    "rejection",
    [BrokenCircuitError, IsolatedCircuitError, BulkheadRejectedError, RateLimitRejectedError],
)
async def test_rejections_are_never_retried_even_if_the_predicate_says_so(
    clock: FakeClock, rejection: type[Exception]
) -> None:
    fn = Script(rejection)
    options = fast(should_handle=ANY_EXCEPTION, max_attempts=5)
    outcome = await pipeline(clock, options).execute_outcome(fn)
    assert isinstance(outcome.exception, rejection)
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_timeout_rejection_is_transient(clock: FakeClock) -> None:
    fn = Script(TimeoutRejectedError, "ok")
    outcome = await advance_until_done(clock, pipeline(clock, fast()).execute_outcome(fn))
    assert outcome.result == "ok"
    assert fn.calls == 2


@pytest.mark.parametrize("kind", [Response, AsyncResponse])
async def test_discarded_results_are_closed_but_the_returned_one_is_not(
    clock: FakeClock, kind: type[Response]
) -> None:
    responses = [kind(503), kind(503), kind(200)]
    fn = Script(*[(lambda r=r: r) for r in responses])
    options = fast(should_handle=handle_result(lambda r: r.status == 503))
    outcome = await advance_until_done(clock, pipeline(clock, options).execute_outcome(fn))
    assert outcome.result is responses[2]
    if isinstance(responses[0], AsyncResponse):  # aclose() wins over close()
        assert [r.aclosed for r in responses] == [True, True, False]  # type: ignore[attr-defined]
        assert [r.closed for r in responses] == [False, False, False]
    else:
        assert [r.closed for r in responses] == [True, True, False]


async def test_last_handled_result_is_returned_open(clock: FakeClock) -> None:
    responses = [Response(503), Response(503)]
    fn = Script(*[(lambda r=r: r) for r in responses])
    options = fast(max_attempts=2, should_handle=handle_result(lambda r: r.status == 503))
    outcome = await advance_until_done(clock, pipeline(clock, options).execute_outcome(fn))
    assert outcome.result is responses[1]
    assert [r.closed for r in responses] == [True, False]


async def test_errors_while_closing_are_swallowed(clock: FakeClock) -> None:
    fn = Script(lambda: BrokenClose(503), lambda: Response(200))
    options = fast(should_handle=handle_result(lambda r: r.status == 503))
    outcome = await advance_until_done(clock, pipeline(clock, options).execute_outcome(fn))
    assert outcome.result.status == 200


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_on_retry_sync_and_async_get_the_right_args(
    clock: FakeClock, asynchronous: bool
) -> None:
    seen: list[OnRetryArgs] = []

    async def async_hook(args: OnRetryArgs) -> None:
        await asyncio.sleep(0)
        seen.append(args)

    async def slow_failure() -> None:
        await clock.sleep(0.5)  # each attempt takes 0.5 s of fake time
        raise Upstream()

    ctx = ResilienceContext("op")
    hook = async_hook if asynchronous else seen.append
    options = fast(max_attempts=3, on_retry=hook)
    built = PipelineBuilder("dep", clock=clock).add_retry(options).build()
    await advance_until_done(clock, built.execute_outcome(slow_failure, context=ctx))
    assert [a.attempt for a in seen] == [0, 1]
    assert [a.delay for a in seen] == [1.0, 2.0]
    assert [a.duration for a in seen] == [0.5, 0.5]
    assert all(isinstance(a.outcome.exception, Upstream) for a in seen)
    assert all(a.context is ctx for a in seen)
    assert clock.sleeps == [0.5, 1.0, 0.5, 2.0, 0.5]


async def test_a_failing_hook_ends_the_call_with_its_exception(clock: FakeClock) -> None:
    def on_retry(args: OnRetryArgs) -> None:
        raise KeyError("hook bug")

    fn = Script(Upstream)
    outcome = await pipeline(clock, fast(on_retry=on_retry)).execute_outcome(fn)
    assert isinstance(outcome.exception, KeyError)
    assert fn.calls == 1


async def test_a_failing_predicate_ends_the_call_with_its_exception(clock: FakeClock) -> None:
    def predicate(outcome: Outcome[Any]) -> bool:
        raise ValueError("predicate bug")

    outcome = await pipeline(clock, RetryOptions(should_handle=predicate)).execute_outcome(
        Script("ok")
    )
    assert isinstance(outcome.exception, ValueError)


async def test_telemetry_events_in_order(clock: FakeClock, listener: RecordingListener) -> None:
    fn = Script(Upstream)
    built = pipeline(clock, fast(max_attempts=3), listener)
    await advance_until_done(clock, built.execute_outcome(fn, context=ResilienceContext("op")))
    assert listener.names() == ["retry", "retry", "retries_exhausted"]
    retries = listener.named("retry")
    assert [e.args["attempt"] for e in retries] == [0, 1]
    assert [e.args["delay"] for e in retries] == [1.0, 2.0]
    assert retries[0].args["exception"] == "Upstream"
    assert retries[0].operation_key == "op"
    assert retries[0].source.strategy == "retry"
    exhausted = listener.named("retries_exhausted")[0]
    assert exhausted.args == {"attempts": 3, "reason": "max_attempts"}


async def test_success_emits_nothing_and_marks_no_degradation(
    clock: FakeClock, listener: RecordingListener
) -> None:
    ctx = ResilienceContext("op")
    built = pipeline(clock, fast(), listener)
    await advance_until_done(clock, built.execute_outcome(Script(Upstream, "ok"), context=ctx))
    assert listener.names() == ["retry"]
    assert not ctx.degradation  # a retry that succeeded is not a degraded answer


async def test_tenacity_stop_and_wait_are_accepted(clock: FakeClock) -> None:
    fn = Script(Upstream)
    options = RetryOptions(stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_fixed(2))
    outcome = await advance_until_done(clock, pipeline(clock, options).execute_outcome(fn))
    assert isinstance(outcome.exception, Upstream)
    assert fn.calls == 4
    assert clock.sleeps == [2.0, 2.0, 2.0]


async def test_tenacity_delay_based_stop_and_exception_wait(clock: FakeClock) -> None:
    fn = Script(Upstream)
    options = RetryOptions(
        stop=tenacity.stop_before_delay(10),
        wait=tenacity.wait_exponential(multiplier=1, max=60)
        + tenacity.wait_exception(lambda exc: 0.5 if isinstance(exc, Upstream) else 0),
    )
    await advance_until_done(clock, pipeline(clock, options).execute_outcome(fn))
    # waits 1.5, 2.5, 4.5 (t = 8.5); the next (8.5) would end past 10 s: stop.
    assert clock.sleeps == [1.5, 2.5, 4.5]
    assert fn.calls == 4


async def test_hint_still_wins_over_a_tenacity_wait(clock: FakeClock) -> None:
    fn = Script(lambda: Upstream(retry_after=3.0))
    options = RetryOptions(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(9))
    await advance_until_done(clock, pipeline(clock, options).execute_outcome(fn))
    assert clock.sleeps == [3.0]


class Counting(Strategy):
    kind = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        self.calls += 1
        return await callback(context, state)


class CountingOptions:
    def __init__(self, strategy: Counting) -> None:
        self.strategy = strategy

    def create_strategy(self, build: BuildContext) -> Strategy:
        return self.strategy


async def test_each_attempt_runs_the_inner_pipeline_again(clock: FakeClock) -> None:
    inner = Counting()
    built = (
        PipelineBuilder("dep", clock=clock).add_retry(fast()).add(CountingOptions(inner)).build()
    )
    await advance_until_done(clock, built.execute_outcome(Script(Upstream)))
    assert inner.calls == 3
