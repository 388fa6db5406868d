"""The shared Redis rate limiter: acquisitions per second per process, and accuracy across
processes. A real redis-server on loopback, started here; real worker processes.

    .venv/bin/python -m bench.redis_limiter [--acquisitions 20000] [--rate 120000] [--seconds 2]
    .venv/bin/python -m bench.redis_limiter --instructions   # + callgrind counts (~1-3 min)

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

* ``--instructions``: one worker under ``valgrind --tool=callgrind``, user-space instructions
  per acquisition over a fixed number of acquisitions after a warm-up (counters zeroed and
  dumped around them), 16 tasks, vs the in-process ``TokenBucketLimiter`` the same way: far
  above the limit (the local path: permits from a held lease) and at the limit (leases of 150
  permits, as each of 4 processes sharing 120,000/s takes with the default ``lease_window``;
  Redis requests and wake-ups included). Unlike CPU time on a shared machine, the count barely
  moves with the load.

Redis ``TIME`` is the clock every process shares; the windows start at one wall time handed
to every worker. Not run by the tests (the smoke test runs it tiny).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench._harness import summary
from netra_resilience.integrations.redis import RedisRateLimiter, redis_breaker, redis_client
from netra_resilience.rate_limiter import TokenBucketLimiter
from tests.servers import RedisServer

TASKS = 16


async def _acquire_all(limiter: RedisRateLimiter | TokenBucketLimiter, n: int, tasks: int) -> float:
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


# Instruction counts: (limiter, rate, burst, lease_window, warm-up, acquisitions counted). At
# the limit (500/s, burst 300, 0.6 s leases) a lease holds 150 permits, as at 30,000/s with
# 10 ms leases; the warm-up spends the burst first. Valgrind runs the code ~50x slower, so
# leases are long enough not to expire sooner than they would outside it.
COUNTED = {
    "redis, above the limit": ("redis", 1e8, 10_000_000, 10.0, 10_000, 20_000),
    "bucket, above the limit": ("bucket", 1e8, 10_000_000, 0.0, 10_000, 20_000),
    "redis, at the limit": ("redis", 500.0, 300, 0.6, 1_000, 1_500),
    "bucket, at the limit": ("bucket", 500.0, 300, 0.0, 1_000, 1_500),
    "redis, one round trip each (lease_window=0)": ("redis", 1e8, 10_000_000, 0.0, 200, 1_000),
}


async def _counted_worker(url: str) -> None:
    """Under callgrind: for each line ``name`` on stdin, warm that limiter up, say ``ready``,
    wait for ``go`` (the counters are zeroed meanwhile), make its counted acquisitions with
    16 tasks, say ``done`` (the counters are dumped)."""
    client = redis_client(url, socket_timeout=120)
    try:
        for index, line in enumerate(iter(sys.stdin.readline, "")):
            kind, rate, burst, window, warm, count = COUNTED[line.strip()]
            limiter: RedisRateLimiter | TokenBucketLimiter
            if kind == "redis":
                limiter = RedisRateLimiter(
                    client,
                    breaker=redis_breaker(client, timeout=60.0),
                    key=f"counted{index}",
                    rate=rate,
                    burst=burst,
                    max_wait=60.0,
                    lease_window=window,
                )
            else:
                limiter = TokenBucketLimiter(rate=rate, burst=burst, max_wait=60.0)
            await _acquire_all(limiter, warm, TASKS)
            print("ready", flush=True)
            sys.stdin.readline()  # blocks the loop: nothing runs while the counters are zeroed
            await _acquire_all(limiter, count, TASKS)
            print("done", flush=True)
            if isinstance(limiter, RedisRateLimiter):
                await limiter.aclose()
    finally:
        await client.aclose()


def instructions(url: str) -> dict[str, float]:
    """User-space instructions per acquisition of each ``COUNTED`` case, one worker under
    ``valgrind --tool=callgrind`` (imports under valgrind take a minute on a busy machine)."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "limiter"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}.%p", "--dump-instr=no",
            sys.executable, "-m", "bench.redis_limiter", "--counted-worker", url,
        ]  # fmt: skip
        worker = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        assert worker.stdin is not None and worker.stdout is not None
        counts: dict[str, float] = {}
        try:
            for part, name in enumerate(COUNTED, start=1):
                worker.stdin.write(f"{name}\n")
                worker.stdin.flush()
                if worker.stdout.readline().strip() != "ready":
                    raise RuntimeError("the counted worker stopped")
                _callgrind("-z", worker.pid)
                worker.stdin.write("go\n")
                worker.stdin.flush()
                if worker.stdout.readline().strip() != "done":
                    raise RuntimeError("the counted worker stopped")
                _callgrind("-d", worker.pid)
                total = _dumped_total(Path(f"{dump}.{worker.pid}.{part}"))
                counts[name] = total / (COUNTED[name][5] // TASKS * TASKS)
        finally:
            worker.stdin.close()
            worker.wait(timeout=300)
    return counts


def _has_callgrind() -> bool:
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        return True
    print("instructions per acquisition: not counted (no valgrind; apt-get install valgrind)")
    return False


def _callgrind(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], capture_output=True, check=True)


def _dumped_total(path: Path) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and (totals := re.search(r"^totals:\s+(\d+)", path.read_text(), re.M)):
            return int(totals[1])
        time.sleep(0.2)  # real-sleep-ok: waiting for valgrind to write its dump
    raise RuntimeError(f"no callgrind dump at {path}")


def print_instructions(counts: dict[str, float]) -> None:
    print(
        f"under callgrind, {TASKS} tasks: user-space instructions per acquisition "
        "(redis = RedisRateLimiter, bucket = the in-process TokenBucketLimiter)"
    )
    for name, count in counts.items():
        print(f"  {name}: {count:,.0f}")
    for where in ("above the limit", "at the limit"):
        redis, bucket = counts[f"redis, {where}"], counts[f"bucket, {where}"]
        what = (
            "a permit from a held lease"
            if where == "above the limit"
            else "leases of 150, Redis requests and wake-ups included"
        )
        summary(
            f"redis limiter, 1 process x {TASKS} tasks, {where} ({what}): instructions per "
            "acquisition (callgrind; reference: in-process TokenBucketLimiter)",
            f"{redis:,.0f}",
            f"{bucket:,.0f}",
            redis / bucket,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--acquisitions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=120_000.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per acquisition under callgrind (a few minutes)",
    )
    parser.add_argument("--counted-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.counted_worker:
        asyncio.run(_counted_worker(args.counted_worker))
        return
    per_process = args.rate / args.processes
    with RedisServer() as redis:
        leased, round_trip = asyncio.run(throughput(redis.url, args.acquisitions, args.rounds))
        ((alone, alone_cpu),) = shared_limit(redis.url, "alone", per_process, 1, args.seconds)
        shared = shared_limit(redis.url, "shared", args.rate, args.processes, args.seconds)
        counted = instructions(redis.url) if args.instructions and _has_callgrind() else None
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
    if counted is not None:
        print_instructions(counted)


if __name__ == "__main__":
    main()
