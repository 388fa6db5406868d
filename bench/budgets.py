"""Per-call cost of a budget's reserve + settle, in memory and on a real Redis (loopback).

    .venv/bin/python -m bench.budgets [--calls 5000] [--ops 2000]

In memory: one call's reserve + settle with one limit and with three (tokens/min per
tenant+model, requests/min per user, cost/day per tenant), against a bare ``await`` of a
no-op. On Redis (a server started here): the same two steps (two Lua scripts) sequentially
(median and p99 latency) and 50 callers at once (calls per second), against the naive
check-then-increment a budget without reservation does (``GET`` then ``INCRBY``: two round
trips, the race LiteLLM #34732 reports). Ratios are netra over naive.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

from bench._harness import summary
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import RedisBudgetStore, redis_breaker, redis_client
from netra_resilience.llm import Budget, BudgetLimit, BudgetStore, LlmRequest, Usage
from tests.servers import RedisServer

REQUEST = LlmRequest(
    "chat",
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64},
)
CONTEXT = ResilienceContext(tenant_id="acme", user_id="u1")
USAGE = Usage(12, 30)


def budget(store: BudgetStore | None, limits: int) -> Budget:
    chosen = [
        BudgetLimit.cost_per_day(1e6, per=("tenant",)),
        BudgetLimit.tokens_per_minute(10**12, per=("tenant", "model")),
        BudgetLimit.requests_per_minute(10**12, per=("user",)),
    ][:limits]
    return Budget(chosen, store=store, models=("gpt-4o-mini",))


def call_of(b: Budget) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        held = await b.reserve(REQUEST, CONTEXT)
        await held.settle(USAGE)

    return call


async def per_call_ns(call: Callable[[], Awaitable[None]], calls: int) -> float:
    for _ in range(min(calls, 500)):
        await call()
    start = time.perf_counter_ns()
    for _ in range(calls):
        await call()
    return (time.perf_counter_ns() - start) / calls


async def latencies_us(call: Callable[[], Awaitable[object]], ops: int) -> tuple[float, float]:
    for _ in range(min(ops, 200)):
        await call()
    samples = []
    for _ in range(ops):
        start = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def throughput(call: Callable[[], Awaitable[object]], ops: int, tasks: int = 50) -> float:
    per_task = max(1, ops // tasks)

    async def loop() -> None:
        for _ in range(per_task):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    return per_task * tasks / (time.perf_counter() - start)


async def run(calls: int, ops: int) -> None:
    print(f"python {platform.python_version()} on {platform.machine()}")

    async def bare() -> None:
        return None

    base = await per_call_ns(bare, calls)
    print("\nin memory (reserve + settle per call)")
    print(f"{'variant':<34} {'ns/call':>9} {'extra ns':>9}")
    for limits in (1, 3):
        ns = await per_call_ns(call_of(budget(None, limits)), calls)
        print(f"{f'{limits} limit(s)':<34} {ns:>9.0f} {ns - base:>9.0f}")
        summary(
            f"budget reserve+settle in memory, {limits} limit(s)",
            f"{(ns - base) / 1000:.2f} us",
            "-",
            None,
        )

    with RedisServer() as server:
        client = redis_client(server.url)
        store = RedisBudgetStore(client, breaker=redis_breaker(client, timeout=2.0))
        netra = {n: call_of(budget(store, n)) for n in (1, 3)}

        async def naive() -> None:
            used = await client.get("naive:cost")  # check ...
            if int(used or 0) < 10**15:
                await client.incrby("naive:cost", 42)  # ... then increment (racy)

        print("\nRedis on loopback, sequential: median / p99 us per call")
        rows: dict[str, Callable[[], Awaitable[None]]] = {"naive GET + INCRBY (racy)": naive}
        rows.update({f"netra reserve + settle, {n} limit(s)": c for n, c in netra.items()})
        medians = {}
        for name, call in rows.items():
            median, p99 = await latencies_us(call, ops)
            medians[name] = median
            print(f"{name:<40} {median:>8.1f} {p99:>8.1f}")
        print("\nRedis, 50 concurrent callers: calls per second")
        rates = {}
        for name, call in rows.items():
            rates[name] = await throughput(call, ops * 2)
            print(f"{name:<40} {rates[name]:>10.0f}")
        naive_key = "naive GET + INCRBY (racy)"
        for name in list(rows)[1:]:
            print(
                f"ratio {name}: latency {medians[name] / medians[naive_key]:.2f}x, "
                f"throughput {rates[name] / rates[naive_key]:.2f}x of naive"
            )
            summary(
                f"{name} on Redis vs naive check-then-increment (median latency)",
                f"{medians[name]:.0f} us",
                f"naive {medians[naive_key]:.0f} us",
                medians[name] / medians[naive_key],
            )
        await store.aclose()
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--ops", type=int, default=2_000)
    options = parser.parse_args(argv)
    asyncio.run(run(options.calls, options.ops))


if __name__ == "__main__":
    main()
