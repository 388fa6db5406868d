"""Timing engine shared by the benchmarks (the method of shared/anchors/bench_peers.py).

Each variant is a coroutine ``run(n)`` doing ``n`` calls in a tight loop. Variants are warmed
up, then timed for several rounds in a shuffled order (slow drift on a noisy machine hits all
alike), with the cyclic GC disabled while timing. Reported: median ns per call and the
*paired* overhead, the median over rounds of (variant - baseline) in the same round.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata

RunFn = Callable[[int], Awaitable[None]]


@dataclass
class Variant:
    name: str
    group: str
    build: Callable[[], Awaitable[RunFn]]
    library: str = "netra"
    run: RunFn | None = None
    samples: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class Row:
    name: str
    group: str
    library: str
    median_ns: float
    overhead_ns: float
    baseline: str


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


async def _timed(run: RunFn, n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        await run(n)
        return (time.perf_counter_ns() - start) / n
    finally:
        gc.enable()


async def measure(
    variants: list[Variant],
    baselines: dict[str, str],
    *,
    calls: int,
    rounds: int,
    warmup: int = 2_000,
    seed: int = 12345,
) -> list[Row]:
    """Time every variant; ``baselines`` maps a group to the variant name it is compared with."""
    live: list[Variant] = []
    for v in variants:
        try:
            v.run = await v.build()
            await v.run(warmup)
            live.append(v)
        except ImportError as exc:
            v.error = f"not installed: {exc}"
    rng = random.Random(seed)
    for _ in range(rounds):
        order = live[:]
        rng.shuffle(order)
        for v in order:
            assert v.run is not None
            v.samples.append(await _timed(v.run, calls))
    by_name = {v.name: v for v in live}
    rows = []
    for v in live:
        base = by_name[baselines[v.group]]
        paired = [a - b for a, b in zip(v.samples, base.samples, strict=True)]
        rows.append(
            Row(
                v.name,
                v.group,
                v.library,
                statistics.median(v.samples),
                statistics.median(paired),
                base.name,
            )
        )
    return rows


async def retained_bytes_per_call(run: RunFn, calls: int = 5_000) -> float:
    """Memory still allocated after ``calls`` calls, per call (leak check for rejections)."""
    await run(500)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await run(calls)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return max(after - before, 0) / calls


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    header = f"{'variant':<46} {'library':<22} {'ns/call':>9} {'extra ns':>9}"
    print(header)
    print("-" * len(header))
    for r in sorted(rows, key=lambda r: r.median_ns):
        print(f"{r.name:<46} {r.library:<22} {r.median_ns:>9.0f} {r.overhead_ns:>9.0f}")


def run_async(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def summary(measure: str, netra: str, reference: str, ratio: float | None) -> None:
    """One line of ``python -m bench.run``'s table: what, netra, reference, netra / reference.

    Every ratio is netra's time or cost divided by the reference's, measured in the same run
    (above 1 = netra slower or costlier); ``None`` when there is nothing to divide by.
    """
    shown = "-" if ratio is None else f"{ratio:.2f}"
    print(f"SUMMARY\t{measure}\t{netra}\t{reference}\t{shown}")
