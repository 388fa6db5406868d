"""Admission control, retry budget and hedging against simulated upstreams, plus the per-call
cost of the adaptive limiter next to a fixed bulkhead.

    .venv/bin/python -m bench.admission [--seconds 30] [--seeds 5] [--calls 20000] [--rounds 5]

The scenarios run on the fake clock (simulated seconds; each seed gives the same figures on
every machine), once per seed: figures are the median over seeds and [min-max]. Only the
per-call cost is real time.

* overload: an upstream with capacity 50 whose latency grows with the square of the excess
  (``0.1 s x (in_flight / 50)^2`` past 50: contention makes it *slower* in total), each call
  +-10 % at random (a real provider never answers in lock-step), offered three times its
  capacity by closed-loop clients (one sixth high priority, the rest low). Variants: no
  limiter, a fixed bulkhead sized for the healthy upstream (50 + queue 100), the adaptive
  limiter (defaults but ``VegasLimit(initial_limit=20, max_limit=500)``: it has to find the
  capacity), and the same with ``priority_reserve=0.1`` (a tenth of the limit held for high
  priority: "reserve"). Goodput = answers per second / capacity (500/s). The unloaded p99 is
  measured: the same upstream offered half its capacity, no limiter. Then again with the
  provider's capacity halving after half the run (bulkhead vs adaptive vs reserve).
* retry storm: 50 % upstream errors at random, 3 attempts; attempts per request with and
  without a shared RetryBudget (ratio 0.1).
* hedging: 5 % of calls at random 10x slower; p99 and attempts with and without hedging at
  the observed p97.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import time
from collections.abc import Awaitable, Callable

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


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """The median over seeds and [min-max]."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-" + (
        f"{fmt.format(max(values))}]"
    )


async def seeded(
    seeds: int, run: Callable[[random.Random], Awaitable[dict[str, float]]]
) -> dict[str, list[float]]:
    """Every figure of ``run`` once per seed."""
    figures: dict[str, list[float]] = {}
    for seed in range(1, seeds + 1):
        for name, value in (await run(random.Random(seed))).items():
            figures.setdefault(name, []).append(value)
    return figures


async def overload(
    variant: str,
    seconds: float,
    rng: random.Random,
    slowdown: bool = False,
    clients: int = 3 * CAPACITY,
) -> dict[str, float]:
    clock = FakeClock()
    builder = PipelineBuilder("llm", clock=clock)
    if variant == "bulkhead":
        builder.add_bulkhead(max_concurrency=CAPACITY, max_queue=100)
    elif variant in ("adaptive", "reserve"):
        builder.add_admission(
            algorithm=VegasLimit(initial_limit=20, max_limit=500),
            priority_reserve=0.1 if variant == "reserve" else 0.0,
        )
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
            jitter = rng.uniform(0.9, 1.1)
            await clock.sleep(BASE * max(1.0, in_flight / capacity) ** 2 * jitter)
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

    high = clients // 6
    tasks = [client(Priority.HIGH) for _ in range(high)]
    tasks += [client(Priority.LOW) for _ in range(clients - high)]
    await advance_until_done(clock, asyncio.gather(*tasks), max_steps=10_000_000)
    answered = sum(len(v) for v in latencies.values())
    capacity_calls = (CAPACITY / BASE) * (0.75 if slowdown else 1.0)  # per second, on average
    return {
        "p99_all": _p99(latencies[Priority.HIGH] + latencies[Priority.LOW]),
        "goodput": answered / seconds / capacity_calls,
        "p99_high": _p99(latencies[Priority.HIGH]),
        "shed_high": shed[Priority.HIGH],
        "shed_low": shed[Priority.LOW],
    }


async def _overload_seed(
    variant: str, seconds: float, rng: random.Random, slowdown: bool = False
) -> dict[str, float]:
    return await overload(variant, seconds, rng, slowdown)


async def retry_storm(budgeted: bool, requests: int, rng: random.Random) -> float:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_second=1.0, clock=clock) if budgeted else None
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_retry(max_attempts=3, delay=0.01, use_jitter=False, budget=budget)
        .build()
    )
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if rng.random() < 0.5:  # 50 % of attempts fail
            raise ConnectionError("upstream error")
        return "ok"

    for _ in range(requests):
        await advance_until_done(clock, pipeline.execute_outcome(flaky))
        await clock.advance(0.02)  # 50 requests per simulated second
    return attempts / requests


async def hedging(hedged: bool, calls: int, rng: random.Random) -> tuple[float, float]:
    clock = FakeClock()
    builder = PipelineBuilder("llm", clock=clock)
    if hedged:
        builder.add_hedging(delay=0.5, delay_percentile=0.97)
    pipeline = builder.build()
    latencies: list[float] = []
    attempts = 0
    for _ in range(calls):
        slow = rng.random() < 0.05
        plan = [
            10 * BASE if slow else BASE + rng.uniform(0, 0.05),
            BASE + rng.uniform(0, 0.05),
        ]

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
    seeds, seconds = args.seeds, args.seconds
    median = statistics.median
    print(f"overload: capacity {CAPACITY}, offered 3x, {seconds:g} simulated s, {seeds} seeds")
    print("  (each figure: median over seeds [min-max])")
    unloaded_runs = await seeded(
        seeds, lambda rng: overload("none", seconds, rng, clients=CAPACITY // 2)
    )
    unloaded = median(unloaded_runs["p99_all"])
    print(f"  unloaded  p99 {spread(unloaded_runs['p99_all'])} s (half the capacity offered)")

    def show(name: str, r: dict[str, list[float]]) -> None:
        ratios = [v / unloaded for v in r["p99_high"]]
        print(
            f"  {name:<9} goodput {spread(r['goodput'], '{:.1%}')}  p99 high "
            f"{spread(r['p99_high'])} s = {spread(ratios, '{:.2f}')}x unloaded  "
            f"shed high {spread(r['shed_high'], '{:.0f}')}, low {spread(r['shed_low'], '{:.0f}')}"
        )

    results: dict[str, dict[str, list[float]]] = {}
    for variant in ("none", "bulkhead", "adaptive", "reserve"):
        results[variant] = await seeded(seeds, functools.partial(_overload_seed, variant, seconds))
        show(variant, results[variant])
    print("  the provider's capacity halves after half the run:")
    slowed: dict[str, dict[str, list[float]]] = {}
    for variant in ("bulkhead", "adaptive", "reserve"):
        slowed[variant] = await seeded(
            seeds, functools.partial(_overload_seed, variant, seconds, slowdown=True)
        )
        show(variant, slowed[variant])
    adaptive, fixed, bare = results["adaptive"], results["bulkhead"], results["none"]
    summary(
        "overload goodput, % of capacity (adaptive vs fixed bulkhead)",
        spread(adaptive["goodput"], "{:.1%}"),
        spread(fixed["goodput"], "{:.1%}"),
        None,
    )
    summary(
        "overload goodput, % of capacity (adaptive vs no limiter)",
        spread(adaptive["goodput"], "{:.1%}"),
        spread(bare["goodput"], "{:.1%}"),
        None,
    )
    summary(
        "overload p99 of admitted high / unloaded p99 (adaptive vs fixed bulkhead)",
        spread([v / unloaded for v in adaptive["p99_high"]], "{:.2f}"),
        spread([v / unloaded for v in fixed["p99_high"]], "{:.2f}"),
        median(adaptive["p99_high"]) / median(fixed["p99_high"]),
    )
    reserve = results["reserve"]
    summary(
        "overload p99 of admitted high / unloaded p99 (adaptive + 0.1 reserve vs without)",
        spread([v / unloaded for v in reserve["p99_high"]], "{:.2f}"),
        spread([v / unloaded for v in adaptive["p99_high"]], "{:.2f}"),
        median(reserve["p99_high"]) / median(adaptive["p99_high"]),
    )
    summary(
        "overload, adaptive admission: calls shed per priority (high-priority vs low-priority)",
        "high " + spread(adaptive["shed_high"], "{:.0f}"),
        "low " + spread(adaptive["shed_low"], "{:.0f}"),
        None,
    )
    summary(
        "provider halves its capacity: goodput % (adaptive vs fixed bulkhead)",
        spread(slowed["adaptive"]["goodput"], "{:.1%}"),
        spread(slowed["bulkhead"]["goodput"], "{:.1%}"),
        None,
    )
    summary(
        "provider halves its capacity: p99 of admitted high, s (adaptive vs fixed bulkhead)",
        spread(slowed["adaptive"]["p99_high"]),
        spread(slowed["bulkhead"]["p99_high"]),
        median(slowed["adaptive"]["p99_high"]) / median(slowed["bulkhead"]["p99_high"]),
    )

    async def storm(rng: random.Random) -> dict[str, float]:
        return {
            "budget": await retry_storm(True, args.requests, rng),
            "none": await retry_storm(False, args.requests, rng),
        }

    storms = await seeded(seeds, storm)
    print(
        f"retry storm: attempts/request {spread(storms['budget'])} with budget, "
        f"{spread(storms['none'])} without"
    )
    summary(
        "retry storm at 50 % errors, attempts per request (budget vs none)",
        spread(storms["budget"]),
        spread(storms["none"]),
        median(storms["budget"]) / median(storms["none"]),
    )

    async def tail(rng: random.Random) -> dict[str, float]:
        state = rng.getstate()
        hedged_p99, hedged_load = await hedging(True, args.requests, rng)
        rng.setstate(state)  # the same calls, unhedged
        plain_p99, plain_load = await hedging(False, args.requests, rng)
        return {"hp99": hedged_p99, "hload": hedged_load, "p99": plain_p99, "load": plain_load}

    tails = await seeded(seeds, tail)
    print(
        f"hedging: p99 {spread(tails['hp99'])} s vs {spread(tails['p99'])} s, "
        f"attempts/call {spread(tails['hload'])} vs {spread(tails['load'])}"
    )
    summary("heavy tail p99, s (hedged vs not)", spread(tails["hp99"]), spread(tails["p99"]),
            median(tails["hp99"]) / median(tails["p99"]))  # fmt: skip
    summary("heavy tail attempts per call (hedged vs not)", spread(tails["hload"]),
            spread(tails["load"]), median(tails["hload"]) / median(tails["load"]))  # fmt: skip
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
    parser.add_argument("--seeds", type=int, default=5, help="runs of each simulated scenario")
    parser.add_argument("--requests", type=int, default=2000, help="retry storm / hedging calls")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timing round")
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
