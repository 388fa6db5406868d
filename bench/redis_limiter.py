"""The shared Redis rate limiter: acquisitions per second per process, and accuracy across
processes. A real redis-server on loopback, started here; real worker processes.

    .venv/bin/python -m bench.redis_limiter [--acquisitions 20000] [--rate 120000] [--seconds 2]

* throughput: one process, 16 tasks acquiring as fast as they can from a limit far above
  their demand, with leases (the default ``lease_window``) vs ``lease_window=0`` (one Redis
  round trip per acquisition), alternating rounds; microseconds per acquisition.
* one process at its limit: 16 tasks against ``rate / processes`` for ``--seconds``; permits
  granted per second vs that limit.
* ``--processes`` (4) processes x 16 tasks sharing ``--rate``: each process's permits per
  second, and all of them together vs the limit (the burst granted at the start is not
  counted). On a machine with fewer free cores than processes the total falls short of the
  limit because the processes are starved of CPU, not of permits: compare with the
  one-process row.

Redis ``TIME`` is the clock every process shares; the windows start at one wall time handed
to every worker. Not run by the tests (the smoke test runs it tiny).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from bench._harness import summary
from netra_resilience.integrations.redis import RedisRateLimiter, redis_breaker, redis_client
from tests.servers import RedisServer

TASKS = 16


async def _acquire_all(limiter: RedisRateLimiter, n: int, tasks: int) -> float:
    """Seconds for ``tasks`` tasks to acquire ``n`` permits together."""

    async def caller(count: int) -> None:
        for _ in range(count):
            await limiter.acquire(1)

    start = time.perf_counter()
    await asyncio.gather(*(caller(n // tasks) for _ in range(tasks)))
    return time.perf_counter() - start


async def throughput(url: str, acquisitions: int, rounds: int) -> tuple[float, float]:
    """Median us per acquisition (leases, one round trip each), alternating rounds."""
    client = redis_client(url)
    samples: dict[float, list[float]] = {0.01: [], 0.0: []}
    try:
        for index in range(rounds * 2):
            window = 0.01 if index % 2 == 0 else 0.0
            limiter = RedisRateLimiter(
                client,
                breaker=redis_breaker(client),
                key=f"throughput{index}",
                rate=1e8,
                burst=10_000_000,
                lease_window=window,
            )
            n = acquisitions if window else max(acquisitions // 10, TASKS)  # round trips: fewer
            seconds = await _acquire_all(limiter, n, TASKS)
            samples[window].append(seconds / (n // TASKS * TASKS) * 1e6)
            await limiter.aclose()
    finally:
        await client.aclose()
    return statistics.median(samples[0.01]), statistics.median(samples[0.0])


async def _saturated(
    url: str, key: str, rate: float, burst: int, replicas: int, start: float, seconds: float
) -> tuple[int, float]:
    client = redis_client(url, socket_timeout=30)
    limiter = RedisRateLimiter(
        client,
        breaker=redis_breaker(client, timeout=1.0),
        key=key,
        rate=rate,
        burst=burst,
        replicas=replicas,
    )
    end = start + seconds

    async def caller() -> int:
        granted = 0
        while True:
            await limiter.acquire(1, max_wait=5.0)
            if time.time() >= end:
                return granted
            granted += 1

    try:
        await asyncio.sleep(max(start - time.time(), 0.0))  # real-sleep-ok: common start
        cpu = time.process_time()
        granted = sum(await asyncio.gather(*(caller() for _ in range(TASKS))))
        return granted, time.process_time() - cpu
    finally:
        await limiter.aclose()
        await client.aclose()


def saturated_worker(
    url: str, key: str, rate: float, burst: int, replicas: int, start: float, seconds: float
) -> tuple[int, float]:
    """One replica: 16 tasks acquiring as fast as the shared limit allows until ``start +
    seconds`` (wall time); the permits it was granted in that window and the CPU seconds it
    used."""
    return asyncio.run(_saturated(url, key, rate, burst, replicas, start, seconds))


def _ready() -> int:
    return 0


def shared_limit(
    url: str, key: str, rate: float, processes: int, seconds: float
) -> list[tuple[int, float]]:
    """(permits granted, CPU seconds) of each of ``processes`` workers sharing ``rate`` for
    ``seconds``."""
    burst = max(1, int(rate * 0.05))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        for started in [pool.submit(_ready) for _ in range(processes)]:
            started.result()  # interpreters up and imports done before the window
        start = time.time() + 0.5
        args = (url, key, rate, burst, processes, start, seconds)
        runs = [pool.submit(saturated_worker, *args) for _ in range(processes)]
        return [run.result() for run in runs]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--acquisitions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=120_000.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    per_process = args.rate / args.processes
    with RedisServer() as redis:
        leased, round_trip = asyncio.run(throughput(redis.url, args.acquisitions, args.rounds))
        ((alone, alone_cpu),) = shared_limit(redis.url, "alone", per_process, 1, args.seconds)
        shared = shared_limit(redis.url, "shared", args.rate, args.processes, args.seconds)
    counts = [count for count, _ in shared]
    cpu_us = sum(cpu for _, cpu in shared) / max(sum(counts), 1) * 1e6
    burst = max(1, int(args.rate * 0.05))
    alone_rate = (alone - max(1, int(per_process * 0.05))) / args.seconds
    total = (sum(counts) - burst) / args.seconds
    rates = [count / args.seconds for count in counts]
    print(
        f"\nredis limiter - {platform.python_implementation()} {platform.python_version()}, "
        f"{TASKS} tasks per process, {args.seconds:g} s windows"
    )
    print(
        f"1 process, limit far above demand: {1e6 / leased:,.0f}/s with leases "
        f"({leased:.2f} us), {1e6 / round_trip:,.0f}/s one round trip each ({round_trip:.2f} us)"
    )
    print(
        f"1 process at {per_process:,.0f}/s: {alone_rate:,.0f}/s granted, "
        f"{alone_cpu / max(alone, 1) * 1e6:.1f} us CPU per acquisition"
    )
    print(
        f"{args.processes} processes sharing {args.rate:,.0f}/s: "
        f"{', '.join(f'{r:,.0f}/s' for r in rates)}; together {total:,.0f}/s "
        f"({total / args.rate - 1:+.1%} of the limit), {cpu_us:.1f} us CPU per acquisition; "
        f"CPU used {sum(cpu for _, cpu in shared) / args.seconds:.2f} of {os.cpu_count()} cores"
    )
    summary(
        f"redis limiter, 1 process x {TASKS} tasks, limit above demand "
        "(us per acquisition; reference: lease_window=0, one round trip each)",
        f"{leased:.2f} us ({1e6 / leased:,.0f}/s)",
        f"{round_trip:.2f} us ({1e6 / round_trip:,.0f}/s)",
        leased / round_trip,
    )
    summary(
        f"redis limiter, 1 process x {TASKS} tasks at its limit (granted/s; reference: limit)",
        f"{alone_rate:,.0f}/s",
        f"{per_process:,.0f}/s",
        alone_rate / per_process,
    )
    summary(
        f"redis limiter, {args.processes} processes x {TASKS} tasks sharing one limit "
        f"(granted/s together, per process {min(rates):,.0f}-{max(rates):,.0f}/s; "
        "reference: limit)",
        f"{total:,.0f}/s",
        f"{args.rate:,.0f}/s",
        total / args.rate,
    )


if __name__ == "__main__":
    main()
