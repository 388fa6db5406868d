"""Budgets on the openai call path (real SDK, scripted upstream): settle to the reported usage,
streams at their end or cut, release on failure, step down to a cheaper model near the limit."""

from __future__ import annotations

import random
from typing import Any

import httpx2
import openai
import pytest

from netra_resilience import ResilienceContext, use_context
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.openai import ResilientOpenAI, openai_alternate
from netra_resilience.llm import (
    Budget,
    BudgetExhaustedError,
    BudgetLimit,
    BudgetScope,
    ModelPrice,
    PriceTable,
    StreamTruncatedError,
)
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    MESSAGES,
    Upstream,
    chunk,
    completion,
    plain_client,
    sse_body,
    sse_response,
)

PRICES = PriceTable({"big": ModelPrice(10.0, 30.0), "small": ModelPrice(0.5, 1.5)})


def with_usage(body: dict[str, Any], prompt: int, output: int) -> dict[str, Any]:
    return {
        **body,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        },
    }


def budget_of(clock: FakeClock, *limits: BudgetLimit) -> Budget:
    return Budget(
        list(limits) or [BudgetLimit.tokens_per_minute(10_000, per=("tenant",))],
        prices=PRICES,
        models=("big", "small"),
        estimate_input=lambda request: 40,
        clock=clock,
    )


def facade(upstream: Upstream, clock: FakeClock, budget: Budget, **options: Any) -> ResilientOpenAI:
    pipeline = standard_llm_pipeline(
        clock=clock, retry=RetryOptions(max_attempts=1), **options.pop("preset", {})
    )
    return ResilientOpenAI(plain_client(upstream), pipeline, budget=budget, **options)


async def ask(llm: ResilientOpenAI, clock: FakeClock, ctx: ResilienceContext, **params: Any) -> Any:
    params = {"model": "big", "messages": MESSAGES, "max_tokens": 100, **params}
    with use_context(ctx):
        return await advance_until_done(clock, llm.chat.completions.create(**params))


TOKENS = BudgetScope(tenant="acme")


async def test_settled_usage_equals_what_the_provider_reported(clock: FakeClock) -> None:
    rng = random.Random(3)
    reported = []

    def reply(request: httpx2.Request) -> httpx2.Response:
        prompt, output = rng.randint(1, 40), rng.randint(0, 100)
        reported.append(prompt + output)
        return httpx2.Response(200, json=with_usage(completion("ok"), prompt, output))

    budget = budget_of(clock)
    llm = facade(Upstream(reply), clock, budget)
    for _ in range(25):
        await ask(llm, clock, ResilienceContext(tenant_id="acme"))
    assert await budget.used(budget.limits[0], TOKENS) == sum(reported)


async def test_a_failed_call_is_released_and_never_retried_past_the_budget(
    clock: FakeClock,
) -> None:
    budget = budget_of(clock, BudgetLimit.tokens_per_minute(300, per=("tenant",)))
    upstream = Upstream(httpx2.Response(500, json={"error": {"message": "boom"}}))
    llm = facade(upstream, clock, budget)
    with pytest.raises(openai.InternalServerError):
        await ask(llm, clock, ResilienceContext(tenant_id="acme"))
    assert await budget.used(budget.limits[0], TOKENS) == 0  # given back

    upstream.script(with_usage(completion("ok"), 40, 100))
    ctx = ResilienceContext(tenant_id="acme")
    await ask(llm, clock, ctx)
    await ask(llm, clock, ctx)  # 280 of 300 tokens held and settled
    with pytest.raises(BudgetExhaustedError) as info:
        await ask(llm, clock, ctx)
    assert len(upstream.calls) == 3  # the refused call was never sent
    assert info.value.retry_after == pytest.approx(60 - clock.now().second)
    assert ctx.degradation.as_dict() == {"llm": "budget_exhausted"}


async def test_a_stream_settles_at_its_end_from_the_usage_chunk(clock: FakeClock) -> None:
    usage = {
        "id": "u",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "big",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    upstream = Upstream(sse_response(sse_body(chunk("Hel"), chunk("lo", finish="stop"), usage)))
    budget = budget_of(clock)
    llm = facade(upstream, clock, budget)
    stream = await ask(llm, clock, ResilienceContext(tenant_id="acme"), stream=True)
    assert upstream.bodies()[0]["stream_options"] == {"include_usage": True}
    assert await budget.used(budget.limits[0], TOKENS) == 140  # held while streaming
    chunks = [c async for c in stream]
    assert len(chunks) == 3
    assert await budget.used(budget.limits[0], TOKENS) == 15


async def test_a_stream_cut_or_closed_before_its_usage_keeps_the_worst_case(
    clock: FakeClock,
) -> None:
    body = sse_body(chunk("Hel"), done=False)  # no finish, no usage: cut
    upstream = Upstream(sse_response(body))
    budget = budget_of(clock)
    llm = facade(upstream, clock, budget)
    stream = await ask(llm, clock, ResilienceContext(tenant_id="acme"), stream=True)
    with pytest.raises(StreamTruncatedError):
        async for _ in stream:
            pass
    assert await budget.used(budget.limits[0], TOKENS) == 140  # the provider may have billed it
    upstream.script(sse_response(sse_body(chunk("a"), chunk("b", finish="stop"))))
    stream = await ask(llm, clock, ResilienceContext(tenant_id="acme"), stream=True)
    await stream.aclose()  # the caller stopped early
    assert await budget.used(budget.limits[0], TOKENS) == 280


async def test_near_the_limit_the_chain_steps_down_to_a_cheaper_model(clock: FakeClock) -> None:
    budget = budget_of(clock, BudgetLimit.cost_per_day(0.01, per=("tenant",)))
    upstream = Upstream(with_usage(completion("ok"), 40, 100))
    cheap = openai_alternate("small", plain_client(upstream), model="small", budget=budget)
    llm = facade(upstream, clock, budget, step_down_at=0.5, preset={"alternates": [cheap]})
    ctx = ResilienceContext(tenant_id="acme")
    await ask(llm, clock, ctx)  # big: 0.0034 held then settled (0.0034 of 0.01)
    assert not ctx.degraded
    ctx = ResilienceContext(tenant_id="acme")
    await ask(llm, clock, ctx)  # big again would pass 0.005: the small model answers
    assert [b["model"] for b in upstream.bodies()] == ["big", "small"]
    assert [tuple(e) for e in ctx.degradation.history] == [
        ("llm", "budget_exhausted"),
        ("llm", "fallback"),
    ]


def test_an_alternate_on_an_unpriced_model_is_refused_at_construction(clock: FakeClock) -> None:
    budget = budget_of(clock, BudgetLimit.cost_per_day(1.0))
    with pytest.raises(InvalidOptionsError) as info:
        openai_alternate(
            "ft", plain_client(Upstream(completion())), model="my-finetune", budget=budget
        )
    assert info.value.field == "model"
    with pytest.raises(InvalidOptionsError) as info:
        facade(Upstream(completion()), clock, budget, step_down_at=1.5)
    assert info.value.field == "step_down_at"
