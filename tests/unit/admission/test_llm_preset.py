"""The LLM preset takes admission, hedging and a retry budget: hedging outside admission,
both inside the fallbacks; the budget caps retries and hedges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, Resilience
from netra_resilience.admission import AdmissionOptions, AIMDLimit, RetryBudget
from netra_resilience.exceptions import AdmissionRejectedError
from netra_resilience.hedging import HedgingOptions, HedgingStrategy
from netra_resilience.retry import RetryStrategy
from netra_resilience.testing import FakeClock


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
