"""Client-side adaptive throttling (Google SRE) on the fake clock: a dead upstream sees a
falling share of calls, a healthy one all of them, and the window forgets the outage."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder, ResilienceContext
from netra_resilience.admission import ThrottleOptions, ThrottleStrategy
from netra_resilience.exceptions import AdmissionRejectedError
from netra_resilience.testing import FakeClock, RecordingListener


def _pipeline(clock: FakeClock, listener: RecordingListener | None = None, **fields: Any) -> Any:
    return (
        PipelineBuilder("llm", clock=clock, random=random.Random(7).random, telemetry=listener)
        .add_throttle(**fields)
        .build()
    )


class Upstream:
    def __init__(self) -> None:
        self.calls = 0
        self.down = True

    async def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("refused")
        return "ok"


async def test_a_dead_upstream_sees_a_falling_share_of_calls(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline = _pipeline(clock, listener, k=2.0, window=60, max_rejection=0.9)
    upstream = Upstream()
    outcomes = [await pipeline.execute_outcome(upstream) for _ in range(1000)]
    # With no accepts the rejection probability climbs to max_rejection: ~10 % get through.
    assert upstream.calls < 150
    rejected = [o for o in outcomes if isinstance(o.exception, AdmissionRejectedError)]
    assert len(rejected) == 1000 - upstream.calls
    assert rejected[0].exception.dependency == "llm"
    assert listener.named("throttled")
    ctx = ResilienceContext("ask")
    while (await pipeline.execute_outcome(upstream, context=ctx)).exception is not None:
        if ctx.degraded:
            break
    assert ctx.degradation.as_dict() == {"llm": "throttled"}


async def test_a_healthy_upstream_is_never_throttled(clock: FakeClock) -> None:
    pipeline = _pipeline(clock)
    upstream = Upstream()
    upstream.down = False
    for _ in range(500):
        assert await pipeline.execute(upstream) == "ok"
    strategy = pipeline.find(ThrottleStrategy)
    assert strategy.rejected == 0 and strategy.rejection_probability == 0


async def test_an_upstream_accepting_more_than_1_over_k_is_not_throttled(
    clock: FakeClock,
) -> None:
    # k = 2: no local rejection while requests <= 2 x accepts, here at 25 % errors.
    pipeline = _pipeline(clock, k=2.0)
    count = 0

    async def flaky() -> str:
        nonlocal count
        count += 1
        if count % 4 == 0:
            raise ConnectionError("refused")
        return "ok"

    for _ in range(400):
        await pipeline.execute_outcome(flaky)
    assert pipeline.find(ThrottleStrategy).rejected == 0


async def test_the_window_forgets_the_outage(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, window=10)
    upstream = Upstream()
    for _ in range(200):
        await pipeline.execute_outcome(upstream)
    strategy = pipeline.find(ThrottleStrategy)
    assert strategy.rejection_probability > 0.8
    await clock.advance(11)
    upstream.down = False
    assert strategy.rejection_probability == 0
    assert await pipeline.execute(upstream) == "ok"


async def test_a_cancelled_call_is_counted_nowhere(clock: FakeClock) -> None:
    pipeline = _pipeline(clock)

    async def hang() -> None:
        await clock.sleep(100)

    task = asyncio.ensure_future(pipeline.execute(hang))
    await clock.settle()
    task.cancel()
    await clock.settle()
    strategy = pipeline.find(ThrottleStrategy)
    assert strategy._requests.total() == 0 and clock.pending == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"k": 0.5}, "k"),
        ({"window": 0}, "window"),
        ({"window": float("inf")}, "window"),
        ({"max_rejection": 1.5}, "max_rejection"),
        ({"is_failure": 3}, "is_failure"),
    ],
)
def test_options_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        ThrottleOptions(**fields)
    assert info.value.field == field
