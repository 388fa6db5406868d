"""A caller that runs a call itself (a hook done without waiting) counts it like execute()."""

from __future__ import annotations

from netra_resilience.circuit_breaker import CircuitState
from netra_resilience.testing import FakeClock

from .helpers import build, fail


async def test_a_closed_plain_breaker_lets_a_call_through_and_counts_its_success(
    clock: FakeClock,
) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, failure_ratio=0.5)
    epoch = breaker.inline_epoch()
    assert epoch >= 0
    breaker.count_success(epoch)
    breaker.count_success(breaker.inline_epoch())
    assert breaker.health.throughput == 2
    await fail(pipeline, 1)  # 1 failure in 3: under the ratio, still closed
    assert breaker.state is CircuitState.CLOSED and breaker.health.throughput == 3


async def test_an_open_breaker_sends_the_caller_through_the_pipeline(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, failure_ratio=0.5)
    epoch = breaker.inline_epoch()
    await fail(pipeline, 2)
    assert breaker.state is CircuitState.OPEN
    assert breaker.inline_epoch() == -1
    breaker.count_success(epoch)  # admitted before it opened: counted in no later window
    assert breaker.state is CircuitState.OPEN and breaker.health.throughput == 2  # unchanged


async def test_a_breaker_timing_slow_calls_is_never_passed_inline(clock: FakeClock) -> None:
    _, breaker = build(clock, slow_call_duration=1.0)
    assert breaker.inline_epoch() == -1
    _, breaker = build(clock, should_handle=lambda outcome: True)
    assert breaker.inline_epoch() == -1
