"""Selection overhead of EndpointPool.execute per call (3 and 30 endpoints) vs a bare call.

Run: ``.venv/bin/python -m bench.routing [--calls 50000]``. Same process, same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench._harness import summary
from netra_resilience.routing import Endpoint, EndpointPool, EndpointPoolOptions, Selection

N = 50_000  # calls per variant; --calls


async def target(endpoint: Endpoint | None = None) -> int:
    return 1


async def bare() -> float:
    start = time.perf_counter()
    for _ in range(N):
        await target()
    return (time.perf_counter() - start) / N * 1e6


async def pooled(size: int, selection: Selection, sticky: bool) -> float:
    urls = [f"http://10.0.0.{i}:80" for i in range(size)]
    pool = EndpointPool("bench", urls, options=EndpointPoolOptions(selection=selection))
    await pool.refresh()
    key = "user-1" if sticky else None
    for _ in range(1000):
        await pool.execute(target, sticky_key=key)
    start = time.perf_counter()
    for _ in range(N):
        await pool.execute(target, sticky_key=key)
    return (time.perf_counter() - start) / N * 1e6


async def main_async() -> None:
    base = await bare()
    print(f"{'variant':<34}{'µs/call':>10}{'overhead µs':>14}")
    print(f"{'bare await':<34}{base:>10.2f}{0:>14.2f}")
    for size in (3, 30):
        for selection in Selection:
            value = await pooled(size, selection, False)
            print(f"{f'{size} endpoints, {selection}':<34}{value:>10.2f}{value - base:>14.2f}")
        value = await pooled(size, Selection.ROUND_ROBIN, True)
        print(f"{f'{size} endpoints, sticky':<34}{value:>10.2f}{value - base:>14.2f}")
        summary(
            f"EndpointPool.execute, {size} endpoints, sticky (us per call)",
            f"{value:.2f} us",
            f"bare await {base:.2f} us",
            value / base,
        )


def main(argv: list[str] | None = None) -> None:
    global N
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=N)
    N = parser.parse_args(argv).calls
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
