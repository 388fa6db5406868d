"""Admission control, retry budget and hedging against simulated upstreams, plus the per-call
cost of the adaptive limiter next to a fixed bulkhead.

    .venv/bin/python -m bench.admission [--seconds 30] [--calls 20000] [--rounds 5]

The scenarios run on the fake clock (simulated seconds, deterministic; figures are the same on
every machine); only the per-call cost is real time.

* overload: an upstream with capacity 50 whose latency grows with the square of the excess
  (``0.1 s x (in_flight / 50)^2`` past 50: contention makes it *slower* in total), offered
  three times its capacity by closed-loop clients (one sixth high priority, the rest low).
  Variants: no limiter, a fixed bulkhead sized for the healthy upstream (50 + queue 100),
  the adaptive limiter (Vegas, queue 100). Goodput = answers per second / capacity (500/s).
  Then again with the provider's capacity halving after half the run (bulkhead vs adaptive).
* retry storm: 50 % upstream errors, 3 attempts; attempts per request with and without a
  shared RetryBudget (ratio 0.1).
* hedging: 5 % of calls 10x slower; p99 and attempts with and without hedging at the
  observed p97.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench._harness import summary
from netra_resilience import PipelineBuilder, ResilienceContext
from netra_resilience.admission import PRIORITY_PROPERTY, Priority, RetryBudget, VegasLimit
from netra_resilience.testing import FakeClock, advance_until_done

CAPACITY = 50
BASE = 0.1


def _p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def overload(variant: str, seconds: float, slowdown: bool = False) -> dict[str, Any]:
    clock = FakeClock()
    builder = PipelineBuilder("llm", clock=clock)
    if variant == "bulkhead":
        builder.add_bulkhead(max_concurrency=CAPACITY, max_queue=100)
    elif variant == "adaptive":
        builder.add_admission(algorithm=VegasLimit(initial_limit=20, max_limit=500))
    pipeline = builder.build()
    in_flight = 0
    latencies: dict[Priority, list[float]] = {Priority.HIGH: [], Priority.LOW: []}
    shed = {Priority.HIGH: 0, Priority.LOW: 0}
    end = clock.monotonic() + seconds

    halfway = clock.monotonic() + seconds / 2

    async def upstream() -> None:
        nonlocal in_flight
        in_flight += 1
        # With slowdown, the provider's capacity halves for the second half of the run.
        capacity = CAPACITY / 2 if slowdown and clock.monotonic() >= halfway else CAPACITY
        try:
            await clock.sleep(BASE * max(1.0, in_flight / capacity) ** 2)
        finally:
            in_flight -= 1

    async def client(priority: Priority) -> None:
        ctx = ResilienceContext("ask")
        ctx.properties[PRIORITY_PROPERTY] = priority
        while clock.monotonic() < end:
            started = clock.monotonic()
            outcome = await pipeline.execute_outcome(upstream, context=ctx)
            if outcome.exception is None:
                latencies[priority].append(clock.monotonic() - started)
            else:
                shed[priority] += 1
                await clock.sleep(0.05)  # a shed client backs off briefly, then tries again

    clients = 3 * CAPACITY
    high = clients // 6
    tasks = [client(Priority.HIGH) for _ in range(high)]
    tasks += [client(Priority.LOW) for _ in range(clients - high)]
    await advance_until_done(clock, asyncio.gather(*tasks), max_steps=10_000_000)
    answered = sum(len(v) for v in latencies.values())
    capacity_calls = (CAPACITY / BASE) * (0.75 if slowdown else 1.0)  # per second, on average
    return {
        "goodput": answered / seconds / capacity_calls,
        "p99_high": _p99(latencies[Priority.HIGH]),
        "shed_high": shed[Priority.HIGH],
        "shed_low": shed[Priority.LOW],
    }


async def retry_storm(budgeted: bool, requests: int) -> float:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, clock=clock) if budgeted else None
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_retry(max_attempts=3, delay=0.01, use_jitter=False, budget=budget)
        .build()
    )
    attempts = 0
    failures = iter([True, False] * requests * 3)  # 50 % of attempts fail

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if next(failures):
            raise ConnectionError("upstream error")
        return "ok"

    for _ in range(requests):
        await advance_until_done(clock, pipeline.execute_outcome(flaky))
        await clock.advance(0.02)  # 50 requests per simulated second
    return attempts / requests


async def hedging(hedged: bool, calls: int) -> tuple[float, float]:
    clock = FakeClock()
    builder = PipelineBuilder("llm", clock=clock)
    if hedged:
        builder.add_hedging(delay=0.5, delay_percentile=0.97)
    pipeline = builder.build()
    latencies: list[float] = []
    attempts = 0
    for i in range(calls):
        normal = BASE + (i * 37 % 50) / 1000
        plan = [10 * BASE if i % 20 == 0 else normal, BASE + (i % 5) / 100]

        tries = [0]  # attempts of this call: the first gets plan[0], hedges plan[1]

        async def call(plan: list[float] = plan, tries: list[int] = tries) -> str:
            nonlocal attempts
            attempts += 1
            tries[0] += 1
            await clock.sleep(plan[min(tries[0] - 1, 1)])
            return "ok"

        started = clock.monotonic()
        await advance_until_done(clock, pipeline.execute(call))
        latencies.append(clock.monotonic() - started)
    return _p99(latencies), attempts / calls


async def per_call_ns(variant: str, calls: int, rounds: int) -> float:
    builder = PipelineBuilder("llm")
    if variant == "bulkhead":
        builder.add_bulkhead(max_concurrency=100)
    elif variant == "adaptive":
        builder.add_admission()
    pipeline = builder.build()

    async def noop() -> None:
        return None

    medians = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            await pipeline.execute(noop)
        medians.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(medians)


async def main_async(args: argparse.Namespace) -> None:
    print(f"overload: capacity {CAPACITY}, offered 3x, {args.seconds:g} simulated s")
    results = {v: await overload(v, args.seconds) for v in ("none", "bulkhead", "adaptive")}
    unloaded = BASE
    for name, r in results.items():
        print(
            f"  {name:<9} goodput {r['goodput']:6.1%}  p99 high {r['p99_high']:.3f} s "
            f"({r['p99_high'] / unloaded:.1f}x unloaded)  shed high {r['shed_high']}, "
            f"low {r['shed_low']}"
        )
    print("  the provider's capacity halves after half the run:")
    slowed = {v: await overload(v, args.seconds, True) for v in ("bulkhead", "adaptive")}
    for name, r in slowed.items():
        print(
            f"  {name:<9} goodput {r['goodput']:6.1%}  p99 high {r['p99_high']:.3f} s "
            f"({r['p99_high'] / unloaded:.1f}x unloaded)  shed high {r['shed_high']}, "
            f"low {r['shed_low']}"
        )
    summary(
        "provider halves its capacity: goodput % (adaptive vs fixed bulkhead)",
        f"{slowed['adaptive']['goodput']:.1%}",
        f"{slowed['bulkhead']['goodput']:.1%}",
        None,
    )
    summary(
        "provider halves its capacity: p99 of admitted high, s (adaptive vs fixed bulkhead)",
        f"{slowed['adaptive']['p99_high']:.3f}",
        f"{slowed['bulkhead']['p99_high']:.3f}",
        slowed["adaptive"]["p99_high"] / slowed["bulkhead"]["p99_high"],
    )
    adaptive, fixed, bare = results["adaptive"], results["bulkhead"], results["none"]
    summary(
        "overload goodput, % of capacity (adaptive vs fixed bulkhead)",
        f"{adaptive['goodput']:.1%}",
        f"{fixed['goodput']:.1%}",
        None,
    )
    summary(
        "overload goodput, % of capacity (adaptive vs no limiter)",
        f"{adaptive['goodput']:.1%}",
        f"{bare['goodput']:.1%}",
        None,
    )
    summary(
        "overload p99 of admitted high, s (adaptive vs fixed bulkhead)",
        f"{adaptive['p99_high']:.3f}",
        f"{fixed['p99_high']:.3f}",
        adaptive["p99_high"] / fixed["p99_high"],
    )
    summary(
        "overload shed high / shed low (adaptive)",
        str(adaptive["shed_high"]),
        str(adaptive["shed_low"]),
        None,
    )
    with_budget = await retry_storm(True, args.requests)
    without = await retry_storm(False, args.requests)
    print(f"retry storm: attempts/request {with_budget:.3f} with budget, {without:.3f} without")
    summary(
        "retry storm at 50 % errors, attempts per request (budget vs none)",
        f"{with_budget:.3f}",
        f"{without:.3f}",
        with_budget / without,
    )
    hedged_p99, hedged_load = await hedging(True, args.requests)
    plain_p99, plain_load = await hedging(False, args.requests)
    print(
        f"hedging: p99 {hedged_p99:.3f} s vs {plain_p99:.3f} s, "
        f"attempts/call {hedged_load:.3f} vs {plain_load:.3f}"
    )
    summary("heavy tail p99, s (hedged vs not)", f"{hedged_p99:.3f}", f"{plain_p99:.3f}",
            hedged_p99 / plain_p99)  # fmt: skip
    summary("heavy tail attempts per call (hedged vs not)", f"{hedged_load:.3f}",
            f"{plain_load:.3f}", hedged_load / plain_load)  # fmt: skip
    variants = ("none", "bulkhead", "adaptive")
    cost = {v: await per_call_ns(v, args.calls, args.rounds) for v in variants}
    print(
        "per call (real time): bare {none:.0f} ns, bulkhead {bulkhead:.0f} ns, "
        "adaptive {adaptive:.0f} ns".format(**cost)
    )
    summary(
        "pipeline call with admission vs with a fixed bulkhead, ns",
        f"{cost['adaptive']:.0f}",
        f"{cost['bulkhead']:.0f}",
        cost["adaptive"] / cost["bulkhead"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="simulated overload time")
    parser.add_argument("--requests", type=int, default=2000, help="retry storm / hedging calls")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timing round")
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
