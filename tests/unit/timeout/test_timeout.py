"""Timeout strategy on its own: own expiry vs caller cancel, generator, hook, validation."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import (
    InvalidOptionsError,
    PipelineBuilder,
    ResilienceContext,
    TimeoutRejectedError,
)
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from netra_resilience.timeout import OnTimeoutArgs, TimeoutOptions, TimeoutStrategy


class Hang:
    """Waits forever; records whether (and how) it was cancelled."""

    def __init__(self) -> None:
        self.cancelled = False
        self.started = False

    async def __call__(self) -> str:
        self.started = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "never"


def build(clock: FakeClock, listener: RecordingListener | None = None, **kwargs: Any) -> Any:
    return (
        PipelineBuilder("dep", clock=clock, telemetry=listener)
        .add_timeout(TimeoutOptions(**kwargs))
        .build()
    )


async def test_own_expiry_is_a_timeout_rejection_and_marks_degradation(
    clock: FakeClock, listener: RecordingListener
) -> None:
    hang, ctx = Hang(), ResilienceContext("op")
    outcome = await advance_until_done(
        clock, build(clock, listener, timeout=5).execute_outcome(hang, context=ctx)
    )
    error = outcome.exception
    assert isinstance(error, TimeoutRejectedError)
    assert isinstance(error, TimeoutError)
    assert (error.timeout, error.dependency) == (5.0, "dep")
    assert hang.cancelled
    assert clock.monotonic() == 1005.0
    assert ctx.degradation.as_dict() == {"dep": "timeout"}
    assert listener.names() == ["timeout"]
    event = listener.events[0]
    assert (event.args, event.operation_key, event.source.strategy) == (
        {"timeout": 5.0},
        "op",
        "timeout",
    )


async def test_fresh_error_per_rejection(clock: FakeClock) -> None:
    pipeline = build(clock, timeout=1)
    first = await advance_until_done(clock, pipeline.execute_outcome(Hang()))
    second = await advance_until_done(clock, pipeline.execute_outcome(Hang()))
    assert first.exception is not second.exception


async def test_caller_cancel_stays_cancelled_error_and_marks_nothing(
    clock: FakeClock, listener: RecordingListener
) -> None:
    hang, ctx = Hang(), ResilienceContext("op")
    task = asyncio.ensure_future(
        build(clock, listener, timeout=5).execute_outcome(hang, context=ctx)
    )
    await clock.advance(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hang.cancelled
    assert not ctx.degradation
    assert listener.names() == []
    assert clock.pending == 0


async def test_completion_in_time_returns_the_result(clock: FakeClock) -> None:
    async def quick() -> int:
        await clock.sleep(1)
        return 42

    assert await advance_until_done(clock, build(clock, timeout=5).execute(quick)) == 42
    assert clock.timeouts == [5.0]
    assert clock.pending == 0


async def test_none_disables_the_timeout(clock: FakeClock) -> None:
    async def quick() -> int:
        return 1

    assert await build(clock, timeout=None).execute(quick) == 1
    assert clock.timeouts == []


async def test_timeout_generator_per_call(clock: FakeClock) -> None:
    def per_call(context: ResilienceContext) -> float | timedelta | None:
        table: dict[str, float | timedelta | None] = {
            "slow": 10.0,
            "fast": timedelta(seconds=2),
            "off": None,
            "zero": 0,
        }
        return table[context.operation_key]

    pipeline = build(clock, timeout=99, timeout_generator=per_call)
    for key in ("slow", "fast"):
        outcome = await advance_until_done(
            clock, pipeline.execute_outcome(Hang(), context=ResilienceContext(key))
        )
        assert isinstance(outcome.exception, TimeoutRejectedError)
    assert clock.timeouts == [10.0, 2.0]

    async def quick() -> str:
        return "ok"

    for key in ("off", "zero"):
        assert await pipeline.execute(quick, context=ResilienceContext(key)) == "ok"
    assert clock.timeouts == [10.0, 2.0]


async def test_a_failing_generator_fails_the_call(clock: FakeClock) -> None:
    def broken(context: ResilienceContext) -> float:
        raise LookupError("no timeout configured")

    outcome = await build(clock, timeout_generator=broken).execute_outcome(Hang())
    assert isinstance(outcome.exception, LookupError)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_on_timeout_hook(clock: FakeClock, asynchronous: bool) -> None:
    seen: list[OnTimeoutArgs] = []

    async def async_hook(args: OnTimeoutArgs) -> None:
        await asyncio.sleep(0)
        seen.append(args)

    ctx = ResilienceContext("op")
    hook = async_hook if asynchronous else seen.append
    pipeline = build(clock, timeout=3, on_timeout=hook)
    outcome = await advance_until_done(clock, pipeline.execute_outcome(Hang(), context=ctx))
    assert isinstance(outcome.exception, TimeoutRejectedError)
    assert seen == [OnTimeoutArgs(ctx, 3.0)]


async def test_a_failing_hook_fails_the_call_with_its_exception(clock: FakeClock) -> None:
    def hook(args: OnTimeoutArgs) -> None:
        raise RuntimeError("hook bug")

    outcome = await advance_until_done(
        clock, build(clock, timeout=1, on_timeout=hook).execute_outcome(Hang())
    )
    assert isinstance(outcome.exception, RuntimeError)


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "5", True])
def test_invalid_timeout_names_the_field(value: Any) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        TimeoutOptions(timeout=value)
    assert info.value.field == "timeout"
    assert "TimeoutOptions.timeout" in str(info.value)


@pytest.mark.parametrize("field", ["timeout_generator", "on_timeout"])
def test_non_callable_hooks_are_rejected(field: str) -> None:
    kwargs: dict[str, Any] = {field: 5}
    with pytest.raises(InvalidOptionsError) as info:
        TimeoutOptions(**kwargs)
    assert info.value.field == field


def test_options_normalise_durations_and_expose_the_strategy() -> None:
    assert TimeoutOptions(timeout=timedelta(milliseconds=1500)).timeout == 1.5
    assert TimeoutOptions().timeout == 30.0
    pipeline = PipelineBuilder("dep").add_timeout(TimeoutOptions(timeout=2)).build()
    strategy = pipeline.find(TimeoutStrategy)
    assert strategy is not None
    assert strategy.timeout == 2.0
    assert not strategy.fused
