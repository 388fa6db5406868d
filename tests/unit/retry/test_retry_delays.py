"""Delay sequences through a real pipeline, asserted exactly on FakeClock.sleeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import Outcome, PipelineBuilder
from netra_resilience.retry import Backoff, RetryDelayArgs, RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done, constant_random
from tests.unit.retry._support import Script, Upstream


async def run(
    clock: FakeClock, options: RetryOptions, fn: Script, *, rand: float = 0.5
) -> Outcome[Any]:
    pipeline = (
        PipelineBuilder("dep", clock=clock, random=constant_random(rand)).add_retry(options).build()
    )
    return await advance_until_done(clock, pipeline.execute_outcome(fn))


def always_failing() -> Script:
    return Script(Upstream)


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Backoff.CONSTANT, [2.0, 2.0, 2.0, 2.0]),
        (Backoff.LINEAR, [2.0, 4.0, 6.0, 8.0]),
        (Backoff.EXPONENTIAL, [2.0, 4.0, 8.0, 16.0]),
    ],
)
async def test_delay_sequences_without_jitter(
    clock: FakeClock, backoff: Backoff, expected: list[float]
) -> None:
    fn = always_failing()
    options = RetryOptions(max_attempts=5, backoff=backoff, delay=2.0, use_jitter=False)
    outcome = await run(clock, options, fn)
    assert isinstance(outcome.exception, Upstream)
    assert fn.calls == 5
    assert clock.sleeps == expected
    assert clock.monotonic() - 1000.0 == sum(expected)


@pytest.mark.parametrize(
    ("backoff", "rand", "expected"),
    [
        (Backoff.CONSTANT, 0.0, [1.5, 1.5, 1.5]),
        (Backoff.LINEAR, 0.0, [1.5, 3.0, 4.5]),
        (Backoff.EXPONENTIAL, 0.5, [1.7948, 2.1860, 4.0715]),
    ],
)
async def test_delay_sequences_with_jitter(
    clock: FakeClock, backoff: Backoff, rand: float, expected: list[float]
) -> None:
    options = RetryOptions(max_attempts=4, backoff=backoff, delay=2.0, use_jitter=True)
    await run(clock, options, always_failing(), rand=rand)
    assert clock.sleeps == pytest.approx(expected, abs=1e-4)


async def test_max_delay_clamps_computed_delays(clock: FakeClock) -> None:
    options = RetryOptions(max_attempts=6, delay=1.0, max_delay=5.0, use_jitter=False)
    await run(clock, options, always_failing())
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_zero_delay_does_not_sleep(clock: FakeClock) -> None:
    fn = always_failing()
    await run(clock, RetryOptions(max_attempts=3, delay=0), fn)
    assert fn.calls == 3
    assert clock.sleeps == []


async def test_server_hint_overrides_and_is_not_clamped_by_max_delay(clock: FakeClock) -> None:
    fn = Script(lambda: Upstream(retry_after=40.0))
    options = RetryOptions(max_attempts=3, delay=1.0, max_delay=30.0, use_jitter=False)
    await run(clock, options, fn)
    assert clock.sleeps == [40.0, 40.0]


async def test_hint_above_max_server_delay_gives_up(clock: FakeClock) -> None:
    fn = Script(lambda: Upstream(retry_after=121.0))
    outcome = await run(clock, RetryOptions(max_attempts=5), fn)
    assert isinstance(outcome.exception, Upstream)
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_custom_hint_reader_and_hints_disabled(clock: FakeClock) -> None:
    fn = Script(Upstream)
    await run(clock, RetryOptions(max_attempts=2, retry_after=lambda o: 3.5), fn)
    assert clock.sleeps == [3.5]

    other = FakeClock()
    fn = Script(lambda: Upstream(retry_after=50.0))
    options = RetryOptions(max_attempts=2, retry_after=None, use_jitter=False, delay=1.0)
    await run(other, options, fn)
    assert other.sleeps == [1.0]


async def test_delay_generator_overrides_and_none_falls_back(clock: FakeClock) -> None:
    seen: list[RetryDelayArgs] = []

    def generator(args: RetryDelayArgs) -> float | None:
        seen.append(args)
        return 7.0 if args.attempt == 1 else None

    options = RetryOptions(
        max_attempts=4,
        backoff=Backoff.CONSTANT,
        delay=2.0,
        use_jitter=False,
        delay_generator=generator,
    )
    await run(clock, options, always_failing())
    assert clock.sleeps == [2.0, 7.0, 2.0]
    assert [a.attempt for a in seen] == [0, 1, 2]
    assert [a.delay for a in seen] == [2.0, 2.0, 2.0]
    assert all(isinstance(a.outcome.exception, Upstream) for a in seen)
    assert all(a.retry_after is None for a in seen)


async def test_delay_generator_beats_the_hint_and_sees_it(clock: FakeClock) -> None:
    hints: list[float | None] = []

    async def generator(args: RetryDelayArgs) -> timedelta:
        hints.append(args.retry_after)
        return timedelta(milliseconds=250)

    fn = Script(lambda: Upstream(retry_after=9.0))
    await run(clock, RetryOptions(max_attempts=3, delay_generator=generator), fn)
    assert clock.sleeps == [0.25, 0.25]
    assert hints == [9.0, 9.0]


async def test_negative_generated_delay_falls_back_to_the_hint(clock: FakeClock) -> None:
    fn = Script(lambda: Upstream(retry_after=4.0))
    await run(clock, RetryOptions(max_attempts=2, delay_generator=lambda a: -1.0), fn)
    assert clock.sleeps == [4.0]


async def test_generated_delay_above_max_server_delay_gives_up(clock: FakeClock) -> None:
    fn = always_failing()
    options = RetryOptions(max_attempts=4, max_server_delay=10.0, delay_generator=lambda a: 11.0)
    outcome = await run(clock, options, fn)
    assert isinstance(outcome.exception, Upstream)
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_jitter_state_is_per_execution(clock: FakeClock) -> None:
    options = RetryOptions(max_attempts=3, delay=1.0, use_jitter=True)
    pipeline = (
        PipelineBuilder("dep", clock=clock, random=constant_random(0.5)).add_retry(options).build()
    )
    await advance_until_done(clock, pipeline.execute_outcome(always_failing()))
    first = list(clock.sleeps)
    clock.sleeps.clear()
    await advance_until_done(clock, pipeline.execute_outcome(always_failing()))
    assert clock.sleeps == first
