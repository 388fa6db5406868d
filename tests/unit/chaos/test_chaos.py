"""Chaos: faults switched on and off at run time, per dependency, with deterministic rates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder, ResilienceContext
from netra_resilience.cache import CacheOptions, InMemoryTTLCache, stable_key
from netra_resilience.chaos import ChaosControl, ChaosFault, ChaosOptions, ChaosStrategy
from netra_resilience.testing import (
    FakeClock,
    RecordingListener,
    advance_until_done,
    constant_random,
)


def no_random() -> float:
    raise AssertionError("random() must not be called when no fault fires")


class Upstream:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return "real"


def chaos_pipeline(
    control: ChaosControl,
    clock: FakeClock,
    *,
    name: str = "llm",
    random: Any = None,
    listener: RecordingListener | None = None,
    dependency: str | None = None,
):
    return (
        PipelineBuilder(
            name, clock=clock, random=random or constant_random(0.5), telemetry=listener
        )
        .add_chaos(ChaosOptions(control=control, dependency=dependency))
        .build()
    )


async def test_without_faults_the_call_is_untouched(clock, listener) -> None:
    upstream = Upstream()
    pipeline = chaos_pipeline(ChaosControl(), clock, random=no_random, listener=listener)
    assert await pipeline.execute(upstream) == "real"
    assert upstream.calls == 1 and clock.sleeps == [] and len(listener) == 0


async def test_exception_injection_can_be_switched_on_and_off(clock, listener) -> None:
    control = ChaosControl()
    upstream = Upstream()
    pipeline = chaos_pipeline(control, clock, listener=listener)
    control.inject_exception("llm", ConnectionError)
    first = await pipeline.execute_outcome(upstream)
    second = await pipeline.execute_outcome(upstream)
    assert isinstance(first.exception, ConnectionError)
    assert first.exception is not second.exception  # a fresh instance per call
    assert upstream.calls == 0
    control.clear("llm")
    assert await pipeline.execute(upstream) == "real"
    [event, _] = listener.named("chaos_injected")
    assert event.args == {"reason": "exception", "dependency": "llm"}


async def test_exception_factory_is_called_per_injection(clock) -> None:
    control = ChaosControl()
    made: list[Exception] = []

    def factory() -> Exception:
        made.append(RuntimeError(f"chaos {len(made)}"))
        return made[-1]

    control.inject_exception("llm", factory)
    pipeline = chaos_pipeline(control, clock)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await pipeline.execute(Upstream())
    assert len(made) == 2


async def test_injected_cancelled_error_propagates(clock) -> None:
    control = ChaosControl()
    control.inject_exception("llm", asyncio.CancelledError)
    with pytest.raises(asyncio.CancelledError):
        await chaos_pipeline(control, clock).execute_outcome(Upstream())


async def test_latency_injection_sleeps_on_the_pipeline_clock(clock) -> None:
    control = ChaosControl()
    upstream = Upstream()
    pipeline = chaos_pipeline(control, clock)
    control.inject_latency("llm", 2.5)
    start = clock.monotonic()
    assert await advance_until_done(clock, pipeline.execute(upstream)) == "real"
    assert clock.sleeps == [2.5] and clock.monotonic() - start == pytest.approx(2.5)
    control.clear()
    assert await pipeline.execute(upstream) == "real"
    assert clock.sleeps == [2.5]


async def test_latency_then_exception_both_apply(clock) -> None:
    control = ChaosControl()
    control.inject_latency("llm", 1.0)
    control.inject_exception("llm", TimeoutError)
    outcome = await advance_until_done(
        clock, chaos_pipeline(control, clock).execute_outcome(Upstream())
    )
    assert isinstance(outcome.exception, TimeoutError) and clock.sleeps == [1.0]
    assert [f.kind for f in control.faults("llm")] == ["latency", "exception"]


async def test_result_injection_with_value_and_factory(clock) -> None:
    control = ChaosControl()
    upstream = Upstream()
    pipeline = chaos_pipeline(control, clock)
    control.inject_result("llm", {"status": 503})
    assert await pipeline.execute(upstream) == {"status": 503}
    control.inject_result("llm", factory=lambda: [])
    one, two = await pipeline.execute(upstream), await pipeline.execute(upstream)
    assert one == [] and one is not two
    assert upstream.calls == 0


@pytest.mark.parametrize(
    ("rate", "draw", "injected"),
    [(0.3, 0.5, False), (0.3, 0.2, True), (0.0, 0.0, False), (1.0, 0.99, True)],
)
async def test_rate_is_compared_with_the_pipeline_random(
    clock, rate: float, draw: float, injected: bool
) -> None:
    control = ChaosControl()
    control.inject_result("llm", "fake", rate=rate)
    result = await chaos_pipeline(control, clock, random=constant_random(draw)).execute(Upstream())
    assert (result == "fake") is injected


async def test_faults_are_isolated_per_dependency(clock) -> None:
    control = ChaosControl()
    control.inject_exception("llm", ConnectionError)
    llm = chaos_pipeline(control, clock, name="llm")
    search = chaos_pipeline(control, clock, name="search", random=no_random)
    renamed = chaos_pipeline(control, clock, name="other", dependency="llm")
    assert await search.execute(Upstream()) == "real"
    with pytest.raises(ConnectionError):
        await llm.execute(Upstream())
    with pytest.raises(ConnectionError):
        await renamed.execute(Upstream())
    strategy = renamed.find(ChaosStrategy)
    assert strategy is not None and strategy.dependency == "llm" and strategy.kind == "chaos"


async def test_enabled_flag_switches_everything_off_and_keeps_the_configuration(clock) -> None:
    control = ChaosControl()
    control.inject_exception("llm", ConnectionError)
    pipeline = chaos_pipeline(control, clock)
    control.enabled = False
    assert await pipeline.execute(Upstream()) == "real"
    assert control.faults("llm") == (ChaosFault("exception", 1.0),)
    control.enabled = True
    with pytest.raises(ConnectionError):
        await pipeline.execute(Upstream())
    assert ChaosControl(enabled=False).enabled is False


async def test_faults_report_and_clear(clock) -> None:
    control = ChaosControl()
    control.inject_latency("a", 0.5, rate=0.1)
    control.inject_result("b", None)
    assert control.faults("a") == (ChaosFault("latency", 0.1, 0.5),)
    assert list(control.dependencies) == ["a", "b"]
    control.clear("a")
    assert control.faults("a") == ()
    assert list(control.dependencies) == ["b"]
    control.clear()
    assert not control.dependencies


async def test_chaos_inside_a_cache_exercises_stale_on_error(clock) -> None:
    control = ChaosControl()
    pipeline = (
        PipelineBuilder("llm", clock=clock, random=constant_random(0.5))
        .add_cache(
            CacheOptions(
                backend=InMemoryTTLCache(clock=clock),
                key=lambda ctx, args, kwargs: stable_key(args),
                include_scope=False,
                ttl=1,
                stale_ttl=60,
            )
        )
        .add_chaos(ChaosOptions(control=control))
        .build()
    )
    await pipeline.execute(Upstream())
    await clock.advance(5)
    control.inject_exception("llm", ConnectionError)
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(Upstream(), context=ctx) == "real"
    assert ctx.degradation.reason("llm") == "stale_cache"


@pytest.mark.parametrize("rate", [1.5, -0.1, float("nan"), "1"])
def test_invalid_rate_raises(rate: Any) -> None:
    with pytest.raises(InvalidOptionsError, match=r"ChaosControl\.rate"):
        ChaosControl().inject_result("llm", 1, rate=rate)


def test_invalid_injections_name_the_field() -> None:
    control = ChaosControl()
    with pytest.raises(InvalidOptionsError, match=r"ChaosControl\.error"):
        control.inject_exception("llm", ValueError("shared instance"))  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"ChaosControl\.seconds"):
        control.inject_latency("llm", -1)
    with pytest.raises(InvalidOptionsError, match=r"ChaosControl\.dependency"):
        control.inject_latency("", 1)
    with pytest.raises(InvalidOptionsError, match=r"ChaosControl\.factory"):
        control.inject_result("llm", factory="nope")  # type: ignore[arg-type]
    assert control.dependencies == ()


def test_invalid_chaos_options_name_the_field() -> None:
    with pytest.raises(InvalidOptionsError, match=r"ChaosOptions\.control"):
        ChaosOptions(control=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"ChaosOptions\.dependency"):
        ChaosOptions(control=ChaosControl(), dependency="")
