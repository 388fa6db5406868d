"""The LLM preset takes admission, hedging and a retry budget: hedging outside admission,
both inside the fallbacks; the budget caps retries and hedges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import CircuitBreakerOptions, InvalidOptionsError, Resilience
from netra_resilience.admission import (
    AdmissionOptions,
    AdmissionStrategy,
    AIMDLimit,
    RetryBudget,
    VegasLimit,
)
from netra_resilience.exceptions import AdmissionRejectedError
from netra_resilience.hedging import HedgingOptions, HedgingStrategy
from netra_resilience.retry import RetryStrategy
from netra_resilience.testing import FakeClock, advance_until_done


async def test_preset_places_hedging_outside_admission_and_shares_the_budget(
    clock: FakeClock,
) -> None:
    resilience = Resilience(clock=clock)
    budget = RetryBudget(ratio=0.1, clock=clock)
    fixed = AIMDLimit(initial_limit=1, min_limit=1, max_limit=1)
    llm = resilience.llm(
        cache=None,
        admission=AdmissionOptions(algorithm=fixed, max_queue=0),
        hedging=HedgingOptions(delay=2.0),
        retry_budget=budget,
    )
    kinds = [s.kind for s in llm.strategies]
    assert kinds.index("hedging") < kinds.index("admission") < kinds.index("retry")
    retry = llm.find(RetryStrategy)
    hedging = llm.find(HedgingStrategy)
    assert retry is not None and retry._budget is budget
    assert hedging is not None and hedging._budget is budget

    gate = asyncio.Event()

    async def complete() -> str:
        await gate.wait()
        return "answer"

    first = asyncio.ensure_future(llm.execute(complete))
    await clock.settle()
    outcome = await llm.execute_outcome(complete)
    assert isinstance(outcome.exception, AdmissionRejectedError)
    assert outcome.exception.dependency == "llm"
    gate.set()
    assert await first == "answer"
    await resilience.aclose()


def test_preset_names_a_wrong_field(clock: FakeClock) -> None:
    resilience = Resilience(clock=clock)
    for field in ("admission", "hedging", "retry_budget"):
        wrong: dict[str, Any] = {field: 0.5}
        with pytest.raises(InvalidOptionsError) as info:
            resilience.llm(**wrong)
        assert info.value.field == field


async def test_preset_defaults_for_admission_and_retry_budget(clock: FakeClock) -> None:
    resilience = Resilience(clock=clock)
    never_opens = CircuitBreakerOptions(minimum_throughput=10_000)  # retries are the subject
    llm = resilience.llm(
        cache=None,
        attempt_timeout=8.0,
        admission=True,
        retry_budget=True,
        circuit_breaker=never_opens,
    )
    admission = llm.find(AdmissionStrategy)
    assert admission is not None
    limiter = admission.limiter
    assert isinstance(limiter.algorithm, VegasLimit) and limiter.algorithm.max_limit == 200
    assert limiter.limit == 20 and limiter.reserved == 2 and limiter.max_queue == 100
    retry = llm.find(RetryStrategy)
    assert retry is not None and isinstance(retry._budget, RetryBudget)
    assert retry._budget.ratio == 0.2
    # A failing provider: the budget's reserve (1/s x 10 s) is all the retries it gets.
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError("provider down")

    burst = asyncio.gather(*(llm.execute_outcome(failing) for _ in range(40)))
    await advance_until_done(clock, burst)
    # 40 concurrent calls, 3 attempts each: 120 without the budget.
    assert 40 < calls <= 40 * 1.2 + 10
    assert retry._budget.denied > 0
    plain = resilience.llm("plain", cache=None, admission=False, retry_budget=False)
    assert plain.find(AdmissionStrategy) is None
    await resilience.aclose()
