"""Code run in separate worker processes (spawned) by the cross-process tests.

Each function builds its own Redis client, store/limiter and pipeline, as a replica would, and
reports back a plain value. Coordination with the test goes through Redis lists (``BLPOP``
blocks on the server, bounded by a timeout), so nothing here polls.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from netra_resilience import BrokenCircuitError, Pipeline, PipelineBuilder
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.integrations.redis import (
    RedisCircuitStateStore,
    RedisRateLimiter,
    redis_breaker,
    redis_client,
)

BREAKER: dict[str, Any] = {"minimum_throughput": 4, "failure_ratio": 0.5, "break_duration": 30.0}
# Generous store timeouts: these tests are about sharing one circuit across processes, and a
# 0.1 s default can expire on a loaded machine (the call then runs unrecorded, by design).
STORE_TIMEOUT = 5.0


def _breaker_pipeline(store: RedisCircuitStateStore, name: str) -> Pipeline:
    options = CircuitBreakerOptions(store=store, **BREAKER)
    return PipelineBuilder(name).add_circuit_breaker(options).build()


async def _fail() -> None:
    raise ConnectionError("upstream down")


async def _breaker_failures(url: str, prefix: str, name: str, calls: int) -> list[str]:
    client = redis_client(url)
    store = RedisCircuitStateStore(
        client, breaker=redis_breaker(client, timeout=STORE_TIMEOUT), prefix=prefix
    )
    pipeline = _breaker_pipeline(store, name)
    seen = []
    try:
        for _ in range(calls):
            try:
                await pipeline.execute(_fail)
            except BrokenCircuitError:
                seen.append("rejected")
            except ConnectionError:
                seen.append("failed")
    finally:
        await store.aclose()
        await client.aclose()
    return seen


def breaker_failures(url: str, prefix: str, name: str, calls: int) -> list[str]:
    """``calls`` failing calls through a shared breaker: what each one met."""
    return asyncio.run(_breaker_failures(url, prefix, name, calls))


async def _breaker_attempt(url: str, prefix: str, name: str, admitted: str, release: str) -> str:
    client = redis_client(url, socket_timeout=30)
    store = RedisCircuitStateStore(
        client, breaker=redis_breaker(client, timeout=STORE_TIMEOUT), prefix=prefix
    )
    pipeline = _breaker_pipeline(store, name)

    async def probe() -> str:
        await client.rpush(admitted, "1")
        await client.blpop([release], timeout=20)  # held until the test releases it
        return "probe"

    try:
        return str(await pipeline.execute(probe))
    except BrokenCircuitError:
        return "rejected"
    finally:
        await store.aclose()
        await client.aclose()


def breaker_attempt(url: str, prefix: str, name: str, admitted: str, release: str) -> str:
    """One call; if admitted it signals ``admitted`` and holds until ``release``."""
    return asyncio.run(_breaker_attempt(url, prefix, name, admitted, release))


def warm() -> int:
    """Imports done; used to start the worker processes before a timed test."""
    return 0


def cpu_wait(pid: int | str = "self") -> float:
    """Seconds a process has spent runnable but waiting for a CPU (``/proc/<pid>/schedstat``;
    0.0 where the kernel does not say): how much the machine, not the code, held it back."""
    try:
        with open(f"/proc/{pid}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _limiter_run(
    url: str,
    key: str,
    ready: str,
    go: str,
    rate: float,
    burst: int,
    duration: float,
    options: dict[str, Any],
    callers: int,
) -> dict[str, float]:
    client = redis_client(url, socket_timeout=30)
    breaker = redis_breaker(client, timeout=1.0)
    limiter = RedisRateLimiter(client, breaker=breaker, key=key, rate=rate, burst=burst, **options)
    try:
        await client.rpush(ready, "1")
        _, raw = await client.blpop([go], timeout=30)  # type: ignore[misc]
        start = float(raw)
        await asyncio.sleep(max(start - time.time(), 0.0))  # real-sleep-ok: common start
        end = start + duration
        waited = cpu_wait()
        last = start

        async def caller() -> int:
            nonlocal last
            granted = 0
            while True:
                await limiter.acquire(1, max_wait=5.0)  # from a lease, or reserves a slot
                now = time.time()
                if now >= end:
                    return granted
                granted += 1
                last = max(last, now)

        granted = sum(await asyncio.gather(*(caller() for _ in range(callers))))
        return {"granted": granted, "last": last, "cpu_wait": cpu_wait() - waited}
    finally:
        await limiter.aclose()
        await client.aclose()


def limiter_run(*args: Any) -> dict[str, float]:
    """One replica, given ``url, key, ready, go, rate, burst, duration, options, callers``:
    ``callers`` callers acquire as fast as the shared limit (``options``: more
    ``RedisRateLimiter`` arguments) allows, from the common start (``go``) for ``duration``
    s. Returns the permits granted in time, the wall time of the last, and the seconds the
    process waited for a CPU meanwhile."""
    return asyncio.run(_limiter_run(*args))
