"""Break duration: fixed, generated (with half-open attempts), stretched by Retry-After, capped."""

from __future__ import annotations

import math

from netra_resilience.circuit_breaker import BreakDurationArgs, CircuitState
from netra_resilience.testing import FakeClock
from tests.unit.circuit_breaker.helpers import build, call, fail


async def test_fixed_break_duration(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, break_duration=20)
    await fail(pipeline, 2)
    assert breaker.retry_after == 20.0
    await clock.advance(12)
    assert breaker.retry_after == 8.0
    await clock.advance(8)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_generator_sees_half_open_attempts_and_backs_off(clock: FakeClock) -> None:
    seen: list[BreakDurationArgs] = []

    def backoff(args: BreakDurationArgs) -> float:
        seen.append(args)
        return 10.0 * float(2**args.half_open_attempts)

    pipeline, breaker = build(
        clock, minimum_throughput=2, break_duration_generator=backoff, failure_ratio=0.5
    )
    await fail(pipeline, 2)
    assert breaker.retry_after == 10.0
    await clock.advance(10)
    await fail(pipeline)  # probe fails
    assert breaker.retry_after == 20.0
    await clock.advance(20)
    await fail(pipeline)
    assert breaker.retry_after == 40.0
    assert [a.half_open_attempts for a in seen] == [0, 1, 2]
    assert (seen[0].failure_count, seen[0].failure_ratio) == (2, 1.0)
    assert seen[0].context is not None
    await clock.advance(40)
    assert (await call(pipeline)).succeeded
    await fail(pipeline, 2)  # after a close the attempts start again
    assert seen[-1].half_open_attempts == 0


async def test_generator_errors_and_nonsense_fall_back_to_break_duration(
    clock: FakeClock,
) -> None:
    answers = iter([math.nan, -5.0])

    def generator(args: BreakDurationArgs) -> float:
        if args.half_open_attempts == 0:
            raise RuntimeError("bug in user code")
        return next(answers)

    pipeline, breaker = build(
        clock, minimum_throughput=2, break_duration=7, break_duration_generator=generator
    )
    await fail(pipeline, 2)
    assert breaker.retry_after == 7.0
    for _ in range(2):
        await clock.advance(7)
        await fail(pipeline)
        assert breaker.retry_after == 7.0


async def test_generator_is_capped(clock: FakeClock) -> None:
    pipeline, breaker = build(
        clock,
        minimum_throughput=2,
        break_duration_generator=lambda args: 10_000.0,
        max_break_duration=120,
    )
    await fail(pipeline, 2)
    assert breaker.retry_after == 120.0


async def test_upstream_retry_after_lengthens_the_break(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, break_duration=15)
    await fail(pipeline, 1)
    await fail(pipeline, 1, retry_after=60)  # the breaking outcome says "come back in 60 s"
    assert breaker.retry_after == 60.0


async def test_upstream_retry_after_is_capped(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, max_break_duration=300)
    await fail(pipeline, 1)
    await fail(pipeline, 1, retry_after=3000)
    assert breaker.retry_after == 300.0


async def test_shorter_upstream_hint_does_not_shorten_the_break(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, break_duration=15)
    await fail(pipeline, 1)
    await fail(pipeline, 1, retry_after=2)
    assert breaker.retry_after == 15.0


async def test_retry_after_hint_can_be_turned_off(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, break_duration=15, retry_after=None)
    await fail(pipeline, 1)
    await fail(pipeline, 1, retry_after=60)
    assert breaker.retry_after == 15.0


async def test_hint_stretches_a_generated_break_and_a_reopen(clock: FakeClock) -> None:
    pipeline, breaker = build(
        clock,
        minimum_throughput=2,
        break_duration_generator=lambda a: 5.0 * (1 + a.half_open_attempts),
    )
    await fail(pipeline, 2)
    assert breaker.retry_after == 5.0
    await clock.advance(5)
    await fail(pipeline, 1, retry_after=45)  # the failing probe carries a hint
    assert breaker.retry_after == 45.0
