"""A retry budget shared by replicas on a real Redis: one fleet-wide ratio and reserve, a retry
storm over two replicas stays within it, and a Redis outage falls back to local decisions
(flagged, counted) whose counts reach Redis once it is back."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import pytest

from netra_resilience import PipelineBuilder, ResilienceContext
from netra_resilience.admission import RetryBudget
from netra_resilience.context import use_context
from netra_resilience.integrations.redis import RedisRetryBudget, redis_breaker, redis_client
from netra_resilience.testing import FakeClock, advance_until_done
from tests.servers import RedisServer


def _budget(
    server: RedisServer, clock: FakeClock, key: str, *, min_per_second: float = 0.0
) -> RedisRetryBudget:
    client = redis_client(server.url)
    breaker = redis_breaker(client, clock=clock, timeout=0.5)
    return RedisRetryBudget(
        client,
        breaker=breaker,
        key=key,
        replicas=2,
        ratio=0.1,
        min_per_second=min_per_second,
        clock=clock,
    )


def _shared(budget: RedisRetryBudget) -> bool:
    return budget.shared


async def _close(*budgets: RedisRetryBudget) -> None:
    for budget in budgets:
        await budget.aclose()
        await budget.client.aclose()


@pytest.fixture
async def pair(redis_server: RedisServer, namespace: str) -> AsyncIterator[list[RedisRetryBudget]]:
    clock = FakeClock()
    made = [_budget(redis_server, clock, namespace) for _ in "ab"]
    yield made
    await _close(*made)


async def test_replicas_spend_one_fleet_budget(pair: list[RedisRetryBudget]) -> None:
    busy, quiet = pair
    for _ in range(100):
        busy.deposit()
    assert await busy.sync() and await quiet.sync()
    assert busy.shared and quiet.shared
    # The fleet saw 100 requests: 10 retries, half each until the next sync. The quiet
    # replica has seen no request itself; alone it could not retry at all.
    alone = RetryBudget(ratio=0.1, min_per_second=0.0)
    assert not alone.try_spend()
    assert [quiet.try_spend() for _ in range(6)] == [True] * 5 + [False]
    assert [busy.try_spend() for _ in range(6)] == [True] * 5 + [False]
    assert quiet.denied == 1 and busy.denied == 1
    for _ in range(2):  # the first round sends the spends, the second reads them all
        assert await busy.sync() and await quiet.sync()
    assert quiet.balance == 0 and not quiet.try_spend()  # the fleet spent its ten
    busy.deposit()  # a new request of its own: ratio x 1 more for this replica
    assert busy.balance == pytest.approx(0.1)


async def test_a_retry_storm_over_two_replicas_stays_within_the_fleet_budget(
    redis_server: RedisServer, namespace: str
) -> None:
    clock = FakeClock()
    budgets = [_budget(redis_server, clock, namespace, min_per_second=1.0) for _ in "ab"]
    pipelines = [
        PipelineBuilder(f"llm-{i}", clock=clock)
        .add_retry(max_attempts=3, delay=0.01, use_jitter=False, budget=budget)
        .build()
        for i, budget in enumerate(budgets)
    ]
    rng = random.Random(7)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if rng.random() < 0.5:
            raise ConnectionError("upstream error")
        return "ok"

    for budget in budgets:
        assert await budget.sync()  # at start-up: decisions on the fleet's figures from here
    requests = 0
    denied_marks = 0
    for step in range(400):
        for pipeline in pipelines:
            ctx = ResilienceContext("ask")
            await advance_until_done(clock, pipeline.execute_outcome(flaky, context=ctx))
            requests += 1
            denied_marks += ctx.degradation.as_dict().get(pipeline.name) == "retry_budget"
        if step % 10 == 9:
            for budget in budgets:
                assert await budget.sync()
        await clock.advance(0.01)
    # 800 requests in 4 simulated seconds: retries at most 10 % of them plus the fleet's
    # reserve (1/s x 10 s), not one reserve per replica; without a budget 1.75 attempts.
    assert attempts <= requests * 1.1 + 10 + 2
    assert attempts / requests <= 1.2
    assert all(b.denied > 0 for b in budgets) and all(b.local_decisions == 0 for b in budgets)
    assert denied_marks == sum(b.denied for b in budgets)  # every denied retry is flagged
    await _close(*budgets)


async def test_redis_down_decides_locally_flagged_and_sends_the_counts_later(
    fault_redis: RedisServer, namespace: str
) -> None:
    clock = FakeClock()
    budget = _budget(fault_redis, clock, namespace)
    for _ in range(20):
        budget.deposit()
    assert await budget.sync()
    fault_redis.kill()
    started = time.monotonic()
    for _ in range(5):  # bounded: refused at once, then the open breaker skips Redis
        assert not await budget.sync()
    assert time.monotonic() - started < 2.0
    assert budget.syncs_failed >= 5 and not budget.shared and not budget.breaker.available
    for _ in range(30):
        budget.deposit()
    ctx = ResilienceContext("ask")
    with use_context(ctx):
        # Alone, over its own 50 requests: 10 % of them, no share of the others' budget.
        granted = sum(budget.try_spend() for _ in range(10))
    assert granted == 5 and budget.denied == 5
    assert budget.local_decisions == 10
    assert ctx.degradation.as_dict() == {"redis": "fallback_memory"}
    fault_redis.start()  # empty: what this replica counted meanwhile must reach it
    assert await budget.breaker.probe_now()
    assert await budget.sync()
    assert _shared(budget)
    raw = await budget.client.hgetall(f"{{netra:retry}}:{namespace}")
    totals = {"d": 0, "s": 0}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else field
        totals[name.rsplit(":", 1)[1]] += int(value)
    assert totals == {"d": 30, "s": 5}
    await _close(budget)
