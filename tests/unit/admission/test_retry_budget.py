"""RetryBudget: retries at most ``ratio`` of recent requests plus a reserve, so at 50 % upstream
errors the load multiplier stays <= 1 + ratio (+ reserve / requests) instead of ~2x."""

from __future__ import annotations

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder, ResilienceContext, RetryOptions
from netra_resilience.admission import RetryBudget
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done


async def _storm(clock: FakeClock, budget: RetryBudget | None, requests: int) -> float:
    """Requests spread over time against an upstream failing every other attempt; returns
    upstream attempts per request."""
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_retry(max_attempts=3, delay=0.01, use_jitter=False, budget=budget)
        .build()
    )
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts % 2:
            raise ConnectionError("upstream 50 % errors")
        return "ok"

    for _ in range(requests):
        await advance_until_done(clock, pipeline.execute_outcome(flaky))
        await clock.advance(0.05)
    return attempts / requests


async def test_budget_keeps_load_multiplier_within_one_plus_ratio(clock: FakeClock) -> None:
    requests = 1000
    unbudgeted = await _storm(clock, None, requests)
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, ttl=10.0, clock=clock)
    budgeted = await _storm(clock, budget, requests)
    assert unbudgeted >= 1.5  # every failed first attempt retried
    assert 1.05 <= budgeted <= 1.1
    assert budget.denied > 0
    assert budget.spent == round((budgeted - 1) * requests)


async def test_the_reserve_adds_at_most_min_per_second(clock: FakeClock) -> None:
    requests = 1000
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, ttl=10.0, clock=clock)
    started = clock.monotonic()
    budgeted = await _storm(clock, budget, requests)
    elapsed = clock.monotonic() - started
    # Per window: ratio x requests + min_per_second x ttl; one window more at the edges.
    assert budgeted <= 1 + 0.1 + 1.0 * (elapsed + 10.0) / requests


async def test_denied_retry_returns_the_last_outcome_flagged(
    clock: FakeClock, listener: RecordingListener
) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock)
    pipeline = (
        PipelineBuilder("llm", clock=clock, telemetry=listener)
        .add_retry(max_attempts=5, delay=0, budget=budget)
        .build()
    )
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    ctx = ResilienceContext("ask")
    outcome = await pipeline.execute_outcome(down, context=ctx)
    assert isinstance(outcome.exception, ConnectionError)
    assert calls == 1
    assert budget.denied == 1
    assert ctx.degradation.as_dict() == {"llm": "retry_budget"}
    [event] = listener.named("retries_exhausted")
    assert event.args["reason"] == "budget"


async def test_reserve_allows_retries_at_low_traffic(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.5, ttl=10.0, clock=clock)
    budget.deposit()
    assert [budget.try_spend() for _ in range(6)] == [True] * 5 + [False]
    assert budget.balance == pytest.approx(0.2)


async def test_window_forgets_old_requests_and_retries(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=10.0, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert all(budget.try_spend() for _ in range(5))
    assert not budget.try_spend()
    await clock.advance(11)  # everything aged out of the window
    assert budget.balance == 0
    budget.deposit()
    budget.deposit()
    assert budget.try_spend()
    assert not budget.try_spend()


def test_options_name_the_field(clock: FakeClock) -> None:
    for fields, field in [
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"min_per_second": -1}, "min_per_second"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": float("inf")}, "ttl"),
    ]:
        with pytest.raises(InvalidOptionsError) as info:
            RetryBudget(**fields)  # type: ignore[arg-type]
        assert info.value.field == field
    with pytest.raises(InvalidOptionsError) as info:
        RetryOptions(budget=0.2)  # type: ignore[arg-type]
    assert info.value.field == "budget"
