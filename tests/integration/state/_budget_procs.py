"""Replicas for the budget race tests: each spawned process builds its own Redis client,
breaker, store and budget, runs 50 concurrent callers, and reports what it really spent."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from netra_resilience.integrations.redis import RedisBudgetStore, redis_breaker, redis_client
from netra_resilience.llm import (
    Budget,
    BudgetExhaustedError,
    BudgetLimit,
    LlmRequest,
    ModelPrice,
    PriceTable,
    Usage,
)

PRICE = ModelPrice(3.0, 15.0)
INPUT_TOKENS = 200
MAX_OUTPUT = 400
REQUEST = LlmRequest("chat", {"model": "m", "messages": [], "max_tokens": MAX_OUTPUT})
WORST_UNITS = PRICE.cost_units(Usage(INPUT_TOKENS, MAX_OUTPUT))


def make_budget(store: RedisBudgetStore, namespace: str, usd: float) -> Budget:
    return Budget(
        [BudgetLimit.cost_per_month(usd)],
        store=store,
        prices=PriceTable({"m": PRICE}),
        models=("m",),
        estimate_input=lambda request: INPUT_TOKENS,
        prefix=f"{{{namespace}}}:",
    )


class Caller:
    """Callers sharing one budget; ``spent`` is what the fake provider reported, in units."""

    def __init__(self, budget: Budget, seed: int) -> None:
        self.budget = budget
        self.rng = random.Random(seed)
        self.spent = 0
        self.admitted = 0
        self.refused = 0
        self.local = 0  # admitted from the local share: Redis looked unavailable

    async def call(self) -> None:
        try:
            held = await self.budget.reserve(REQUEST)
        except BudgetExhaustedError:
            self.refused += 1
            return
        self.admitted += 1
        self.local += held.local
        for _ in range(self.rng.randint(0, 3)):
            await asyncio.sleep(0)  # "in flight" while the others reserve
        actual = Usage(INPUT_TOKENS, self.rng.randint(1, MAX_OUTPUT))
        self.spent += PRICE.cost_units(actual)
        await held.settle(actual)

    def report(self) -> dict[str, int]:
        return {"spent": self.spent, "admitted": self.admitted, "refused": self.refused}


async def _race(url: str, namespace: str, usd: float, tasks: int, calls: int, seed: int) -> Any:
    client = redis_client(url)
    store = RedisBudgetStore(client, breaker=redis_breaker(client, timeout=2.0), replicas=4)
    caller = Caller(make_budget(store, namespace, usd), seed)

    async def loop() -> None:
        for _ in range(calls):
            await caller.call()

    try:
        await client.blpop([f"{namespace}:go"], timeout=20)  # all replicas start together
        await asyncio.gather(*(loop() for _ in range(tasks)))
    finally:
        await store.aclose()
        await client.aclose()
    return caller.report()


def race(url: str, namespace: str, usd: float, tasks: int, calls: int, seed: int) -> Any:
    """One replica: ``tasks`` concurrent callers making ``calls`` calls each."""
    return asyncio.run(_race(url, namespace, usd, tasks, calls, seed))


async def _outage(url: str, namespace: str, usd: float, seed: int, signals: Any) -> Any:
    """Phase 1 on Redis, ending with one hold per caller still in flight; the test SIGSTOPs
    Redis; phase 2 settles those holds and calls on from the local share; the test resumes
    Redis; the replica reconciles."""
    arrived, stopped, finished, resumed = signals
    client = redis_client(url, socket_timeout=5)
    store = RedisBudgetStore(
        client, breaker=redis_breaker(client, timeout=0.05, retry_interval=60.0), replicas=4
    )
    budget = make_budget(store, namespace, usd)
    caller = Caller(budget, seed)
    holding = 0
    all_holding = asyncio.Event()
    redis_stopped = asyncio.Event()

    async def run() -> None:
        nonlocal holding
        for _ in range(2):
            await caller.call()
        try:
            held = await budget.reserve(REQUEST)
        except BudgetExhaustedError:
            held = None
            caller.refused += 1
        holding += 1
        if holding == 50:
            all_holding.set()
        await redis_stopped.wait()
        if held is not None:
            caller.admitted += 1
            actual = Usage(INPUT_TOKENS, caller.rng.randint(1, MAX_OUTPUT))
            caller.spent += PRICE.cost_units(actual)
            await held.settle(actual)  # Redis is stopped: kept for reconciliation
        for _ in range(3):
            await caller.call()  # from the local share

    try:
        tasks = [asyncio.create_task(run()) for _ in range(50)]
        await all_holding.wait()
        seen = max(store._seen.values(), default=0)  # the last total this replica read
        arrived.put(seen)
        await asyncio.to_thread(stopped.wait, 20)
        redis_stopped.set()
        await asyncio.gather(*tasks)
        finished.put(caller.report())
        await asyncio.to_thread(resumed.wait, 20)
        reconciled = await store.reconcile()
    finally:
        await store.aclose()
        await client.aclose()
    return {**caller.report(), "reconciled": reconciled, "seen": seen}


def outage(url: str, namespace: str, usd: float, seed: int, signals: Any) -> Any:
    return asyncio.run(_outage(url, namespace, usd, seed, signals))
