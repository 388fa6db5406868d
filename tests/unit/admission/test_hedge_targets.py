"""Hedges sent elsewhere: ``HedgingOptions(targets=...)`` runs another target with the call's
arguments, and the LLM preset's ``hedge_to_alternates`` hedges to the fallback chain's
alternates through their own pipelines; the primary loser is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder, ResilienceContext
from netra_resilience.hedging import HedgingOptions, HedgingStrategy
from netra_resilience.llm import Alternate, alternate_hedge, standard_llm_pipeline
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock, advance_until_done


async def test_a_hedge_runs_its_target_with_the_call_arguments(clock: FakeClock) -> None:
    seen: list[tuple[Any, ...]] = []
    cancelled = asyncio.Event()

    async def primary(prompt: str, *, model: str) -> str:
        try:
            await clock.sleep(10.0)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return f"{model}: {prompt}"

    async def other(
        context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Outcome[str]:
        seen.append((context.operation_key, args, kwargs))
        await clock.sleep(1.0)
        return Outcome(f"other: {args[0]}")

    pipeline = PipelineBuilder("llm", clock=clock).add_hedging(delay=2.0, targets=[other]).build()
    start = clock.monotonic()
    ctx = ResilienceContext("ask")
    answer = await advance_until_done(
        clock, pipeline.execute(primary, "hi", model="big", context=ctx)
    )
    assert answer == "other: hi"
    assert clock.monotonic() - start == 3.0
    assert seen == [(ctx.operation_key, ("hi",), {"model": "big"})]
    assert cancelled.is_set() and clock.pending == 0
    strategy = pipeline.find(HedgingStrategy)
    assert strategy is not None and strategy.hedge_wins == 1


async def test_a_target_that_raises_is_a_failed_hedge(clock: FakeClock) -> None:
    async def primary() -> str:
        await clock.sleep(5.0)
        return "primary"

    async def broken(context: ResilienceContext, args: Any, kwargs: Any) -> Outcome[str]:
        raise ConnectionError("other deployment down")

    pipeline = PipelineBuilder("llm", clock=clock).add_hedging(delay=1.0, targets=[broken]).build()
    assert await advance_until_done(clock, pipeline.execute(primary)) == "primary"


async def test_the_preset_hedges_to_its_alternates(clock: FakeClock) -> None:
    calls: list[str] = []

    async def slow_primary(prompt: str) -> str:
        calls.append("primary")
        await clock.sleep(30.0)
        return "primary"

    async def small_model(prompt: str) -> str:
        calls.append("small")
        await clock.sleep(0.5)
        return f"small: {prompt}"

    small = Alternate(
        name="small", call=small_model, pipeline=PipelineBuilder("small", clock=clock).build()
    )
    llm = standard_llm_pipeline(
        clock=clock,
        hedging=HedgingOptions(delay=2.0),
        alternates=[small],
        hedge_to_alternates=True,
    )
    start = clock.monotonic()
    assert await advance_until_done(clock, llm.execute(slow_primary, "hi")) == "small: hi"
    assert clock.monotonic() - start == 2.5
    assert calls == ["primary", "small"]
    assert clock.pending == 0


def test_hedge_targets_are_validated() -> None:
    with pytest.raises(InvalidOptionsError) as info:
        HedgingOptions(targets=["not callable"])  # type: ignore[list-item]
    assert info.value.field == "targets"
    with pytest.raises(InvalidOptionsError) as info:
        standard_llm_pipeline(hedge_to_alternates=True)
    assert info.value.field == "hedge_to_alternates"

    async def nothing() -> None:
        return None

    assert callable(alternate_hedge(Alternate(name="a", call=nothing)))
