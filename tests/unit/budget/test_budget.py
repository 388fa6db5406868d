"""Budgets in memory: reserve the worst case, settle to usage, refuse with the window's reset."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from netra_resilience.context import ResilienceContext
from netra_resilience.engine import RunEvents, RunRequest, wrap_engine
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.llm import (
    API_KEY_PROPERTY,
    DEFAULT_PRICES,
    Budget,
    BudgetExhaustedError,
    BudgetLimit,
    BudgetScope,
    LlmRequest,
    ModelPrice,
    PriceTable,
    UnpricedModelError,
    Usage,
    input_token_bound,
    is_transient_failure,
    usage_of,
)
from netra_resilience.testing import FakeClock
from tests.unit.engine.helpers import Recorder

PRICES = PriceTable({"big": ModelPrice(10.0, 30.0), "small": ModelPrice(1.0, 2.0)})


def ask(
    model: str = "big", max_tokens: int = 100, text: str = "hi", **params: object
) -> LlmRequest:
    messages = [{"role": "user", "content": text}]
    return LlmRequest(
        "chat", {"model": model, "messages": messages, "max_tokens": max_tokens, **params}
    )


def tokens_of(request: LlmRequest) -> int:
    return 50  # a fixed input count, so the arithmetic below is exact


def cost_budget(usd: float, clock: FakeClock, **options: object) -> Budget:
    return Budget(
        [BudgetLimit.cost_per_day(usd, per=("tenant",))],
        prices=PRICES,
        models=("big", "small"),
        estimate_input=tokens_of,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


async def test_reserve_holds_the_worst_case_and_settle_replaces_it(clock: FakeClock) -> None:
    budget = cost_budget(1.0, clock)
    ctx = ResilienceContext(tenant_id="acme")
    limit = budget.limits[0]
    held = await budget.reserve(ask(), ctx)
    assert held.worst == Usage(50, 100)
    assert held.worst_cost == pytest.approx(50 * 10e-6 + 100 * 30e-6)
    assert await budget.used(limit, BudgetScope(tenant="acme")) == pytest.approx(0.0035)
    await held.settle(Usage(50, 7))
    assert await budget.used(limit, BudgetScope(tenant="acme")) == pytest.approx(0.00071)
    await held.release()  # ended once: a second ending changes nothing
    assert await budget.used(limit, BudgetScope(tenant="acme")) == pytest.approx(0.00071)
    assert await budget.used(limit, BudgetScope(tenant="other")) == 0.0


async def test_failure_releases_cancel_keeps_input_success_without_usage_keeps_worst(
    clock: FakeClock,
) -> None:
    budget = Budget(
        [BudgetLimit.tokens_per_minute(10_000), BudgetLimit.requests_per_minute(10)],
        estimate_input=tokens_of,
        clock=clock,
    )
    tokens, requests = budget.limits
    with pytest.raises(RuntimeError):
        async with await budget.reserve(ask()):
            raise RuntimeError("provider 500")
    assert await budget.used(tokens) == 0  # given back
    assert await budget.used(requests) == 1  # the request was still sent

    async def cancelled() -> None:
        async with await budget.reserve(ask()):
            await asyncio.Event().wait()

    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await budget.used(tokens) == 50  # input may have been billed; output part dropped

    async with await budget.reserve(ask()):
        pass  # no usage reported: the worst case stays
    assert await budget.used(tokens) == 50 + 150
    assert await budget.used(requests) == 3


async def test_concurrent_reservers_never_overshoot_and_the_settled_sum_is_exact(
    clock: FakeClock,
) -> None:
    budget = cost_budget(0.5, clock)
    ctx = ResilienceContext(tenant_id="acme")
    rng = random.Random(7)
    spent: list[Usage] = []
    refused = 0

    async def caller() -> None:
        nonlocal refused
        for _ in range(5):
            try:
                held = await budget.reserve(ask(), ctx)
            except BudgetExhaustedError:
                refused += 1
                continue
            await asyncio.sleep(0)  # other callers reserve while this one is "in flight"
            actual = Usage(50, rng.randint(0, 100))
            spent.append(actual)
            await held.settle(actual)

    await asyncio.gather(*(caller() for _ in range(200)))
    price = PRICES.get("big")
    assert price is not None
    total = sum(price.cost_units(u) for u in spent)
    assert refused > 0 and spent
    assert total <= 0.5 * 1e9  # never more than the limit: every hold was checked atomically
    used = await budget.used(budget.limits[0], BudgetScope(tenant="acme"))
    assert round(used * 1e9) == total  # settled usage equals the reported usage exactly


async def test_exhausted_is_a_typed_rejection_with_the_window_reset_and_a_flag() -> None:
    clock = FakeClock(wall=datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    budget = Budget(
        [BudgetLimit.cost_per_month(0.004)],
        prices=PRICES,
        models=("big",),
        estimate_input=tokens_of,
        clock=clock,
    )
    ctx = ResilienceContext()
    await budget.reserve(ask(), ctx)  # 0.0035 of 0.004
    with pytest.raises(BudgetExhaustedError) as info:
        await budget.reserve(ask(), ctx, dependency="gpt")
    error = info.value
    assert error.retry_after == pytest.approx(3600.0)  # the month ends in an hour
    assert error.limit is budget.limits[0] and error.dependency == "gpt"
    assert error.http_status == 429 and not error.near_limit
    assert not is_transient_failure(error)  # never retried before the reset
    assert ctx.degradation.as_dict() == {"gpt": "budget_exhausted"}
    assert "cost/month" in str(error) and "retry after 3600" in str(error)
    await clock.advance(3600)  # February: a fresh window
    await budget.reserve(ask(), ctx)


async def test_a_call_larger_than_the_whole_limit_can_never_fit(clock: FakeClock) -> None:
    budget = Budget([BudgetLimit.tokens_per_minute(100)], estimate_input=tokens_of, clock=clock)
    with pytest.raises(BudgetExhaustedError) as info:
        await budget.reserve(ask(max_tokens=60))
    assert info.value.retry_after is None
    assert "exceeds the whole limit" in str(info.value)


async def test_step_down_ceiling_refuses_the_expensive_call_a_cheaper_one_fits(
    clock: FakeClock,
) -> None:
    budget = cost_budget(0.01, clock)
    ctx = ResilienceContext(tenant_id="acme")
    await budget.reserve(ask(), ctx)  # 0.0035 of 0.01
    with pytest.raises(BudgetExhaustedError) as info:
        await budget.reserve(ask(), ctx, ceiling=0.5)  # 0.007 > 0.005
    assert info.value.near_limit
    small = await budget.reserve(ask("small"), ctx)  # at the full limit, cheaper
    assert small.worst_cost == pytest.approx(50e-6 + 200e-6)


async def test_composed_scopes_keep_separate_counters(clock: FakeClock) -> None:
    limit = BudgetLimit.tokens_per_minute(200, per=("tenant", "model"))
    budget = Budget(
        [limit, BudgetLimit.requests_per_minute(3, per=("user",))],
        estimate_input=tokens_of,
        clock=clock,
    )
    a = ResilienceContext(tenant_id="a", user_id="u1")
    await budget.reserve(ask("big"), a)
    await budget.reserve(ask("small"), a)  # another model: another token counter
    with pytest.raises(BudgetExhaustedError) as info:
        await budget.reserve(ask("big"), a)  # 150 of 200 tokens held for (a, big) already
    assert info.value.limit is limit
    await budget.reserve(ask("big"), ResilienceContext(tenant_id="b", user_id="u1"))
    with pytest.raises(BudgetExhaustedError) as info:
        await budget.reserve(ask("tiny"), ResilienceContext(tenant_id="c", user_id="u1"))
    assert info.value.limit is budget.limits[1]
    await clock.advance(60)
    await budget.reserve(ask("big"), a)


async def test_api_key_dimension_reads_a_key_id_property(clock: FakeClock) -> None:
    budget = Budget([BudgetLimit.requests_per_minute(1, per=("api_key",))], clock=clock)
    ctx = ResilienceContext(properties={API_KEY_PROPERTY: "key-1"})
    await budget.reserve(ask(), ctx)
    with pytest.raises(BudgetExhaustedError):
        await budget.reserve(ask(), ResilienceContext(properties={API_KEY_PROPERTY: "key-1"}))
    await budget.reserve(ask(), ResilienceContext(properties={API_KEY_PROPERTY: "key-2"}))


def test_unknown_models_are_priced_explicitly_or_refused() -> None:
    limit = BudgetLimit.cost_per_day(5.0)
    with pytest.raises(InvalidOptionsError) as info:
        Budget([limit])
    assert info.value.field == "models"
    with pytest.raises(InvalidOptionsError, match="no price for model 'my-finetune'"):
        Budget([limit], models=("gpt-4o-mini", "my-finetune"))
    budget = Budget([limit], models=("gpt-4o-mini-2024-07-18",))  # a dated snapshot: its base
    assert budget.price_of("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES.get("gpt-4o-mini")
    with pytest.raises(UnpricedModelError):
        budget.price_of("my-finetune")
    flat = Budget([limit], unknown_model_price=ModelPrice(5.0, 15.0))
    assert flat.price_of("my-finetune") == ModelPrice(5.0, 15.0)
    Budget([BudgetLimit.tokens_per_minute(10)])  # no cost limit: no prices needed


async def test_a_call_to_an_unpriced_model_is_refused_before_sending(clock: FakeClock) -> None:
    budget = Budget([BudgetLimit.cost_per_day(5.0)], models=("gpt-4o",), clock=clock)
    with pytest.raises(UnpricedModelError) as info:
        await budget.reserve(ask("my-finetune"))
    assert not is_transient_failure(info.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"metric": "dollars", "limit": 1, "window": "day"}, "metric"),
        ({"metric": "cost", "limit": 1, "window": "week"}, "window"),
        ({"metric": "cost", "limit": 0, "window": "day"}, "limit"),
        ({"metric": "cost", "limit": 1e12, "window": "day"}, "limit"),
        ({"metric": "tokens", "limit": 1, "window": "day", "per": ("team",)}, "per"),
        ({"metric": "tokens", "limit": 1, "window": "day", "per": ("user", "user")}, "per"),
    ],
)
def test_invalid_limits_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        BudgetLimit(**options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_budget_options_are_checked() -> None:
    limit = BudgetLimit.tokens_per_minute(10)
    with pytest.raises(InvalidOptionsError, match="twice"):
        Budget([limit, BudgetLimit.tokens_per_minute(20)])
    with pytest.raises(InvalidOptionsError) as info:
        Budget([])
    assert info.value.field == "limits"
    with pytest.raises(InvalidOptionsError) as info:
        Budget([limit], default_max_output=0)
    assert info.value.field == "default_max_output"


def test_worst_case_uses_the_output_cap_the_model_limit_and_n() -> None:
    budget = Budget([BudgetLimit.tokens_per_minute(10**6)], estimate_input=tokens_of)
    assert budget.worst_case(ask(max_tokens=10, n=3)).output_tokens == 30
    request = LlmRequest("chat", {"model": "gpt-4o-mini", "messages": []})
    assert budget.worst_case(request).output_tokens == 16_384  # the model's own cap
    request = LlmRequest("responses", {"model": "x", "input": "hi", "max_output_tokens": 5})
    assert budget.worst_case(request).output_tokens == 5
    assert (
        Budget([BudgetLimit.tokens_per_minute(1)], default_max_output=77)
        .worst_case(LlmRequest("chat", {"model": "x", "messages": []}))
        .output_tokens
        == 77
    )


def test_input_bound_counts_bytes_so_it_is_never_below_the_tokens() -> None:
    text = "naïve 日本語 " * 10
    bound = input_token_bound(ask(text=text))
    assert bound >= len(text.encode())  # a byte-level BPE token is at least one byte


def test_usage_is_read_from_completions_responses_and_stream_events() -> None:
    assert usage_of({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == Usage(3, 4)
    assert usage_of({"usage": {"input_tokens": 5, "output_tokens": 6}}) == Usage(5, 6)
    event = {
        "type": "response.completed",
        "response": {"usage": {"input_tokens": 1, "output_tokens": 2}},
    }
    assert usage_of(event) == Usage(1, 2)
    assert usage_of({"usage": None}) is None
    assert usage_of({"usage": {"prompt_tokens": -1, "completion_tokens": 4}}) is None
    assert usage_of({"usage": {"prompt_tokens": "3", "completion_tokens": 4}}) is None
    assert usage_of({"choices": []}) is None


async def test_an_agent_run_refused_by_its_run_budget_ends_saying_why(clock: FakeClock) -> None:
    budget = Budget(
        [BudgetLimit.tokens_per_minute(400, per=("run",))], estimate_input=tokens_of, clock=clock
    )

    admitted: list[str | None] = []

    async def engine(request: RunRequest, events: RunEvents) -> str:
        for _ in range(5):  # a runaway loop: the third call no longer fits this run's budget
            async with await budget.reserve(ask()) as held:
                admitted.append(request.run_id)
                await held.settle(Usage(50, 100))
        return "never"

    sink = Recorder()
    stack = wrap_engine(engine, clock=clock)
    result = await stack.run(RunRequest("q", user_id="u1"), sink)
    await stack.aclose()
    final = sink.final()
    assert final["data"]["status"] == "failed"
    assert final["data"]["error"]["type"] == "BudgetExhaustedError"
    assert final["degradation"] == {"llm": "budget_exhausted"}
    assert result.error_type == "BudgetExhaustedError"
    other = await stack.run(
        RunRequest("q", user_id="u1"), Recorder()
    )  # another run: its own budget
    assert (
        other.error_type == "BudgetExhaustedError"
    )  # the loop runs past it again, two calls later
