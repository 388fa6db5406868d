"""Builders shared by the state tests (real servers; see conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from netra_resilience.integrations.redis import (
    RedisRateLimiter,
    RedisSessionBackend,
    redis_breaker,
    redis_client,
)
from netra_resilience.integrations.sqlalchemy import (
    PoolBulkhead,
    SqlSessionBackend,
    create_pooled_engine,
)
from netra_resilience.sessions import SessionStore
from tests.integration.state._procs import cpu_wait
from tests.servers import RedisServer


@asynccontextmanager
async def sql_backend(
    url: str, table: str, *, pool_size: int = 5, **bulkhead: object
) -> AsyncIterator[SqlSessionBackend]:
    """A session table on its own engine, created fresh, disposed afterwards."""
    engine = create_pooled_engine(url, pool_size=pool_size)
    backend = SqlSessionBackend(PoolBulkhead(engine, **bulkhead), table=table)  # type: ignore[arg-type]
    try:
        await backend.create_schema()
        yield backend
    finally:
        await backend.database.aclose()
        await engine.dispose()


@asynccontextmanager
async def redis_pg_store(
    redis_url: str,
    fallback: SqlSessionBackend,
    *,
    prefix: str,
    primary_timeout: float = 0.1,
    retry_interval: float = 0.05,
) -> AsyncIterator[SessionStore]:
    """A store on Redis with ``fallback`` behind it, tuned for fast fault tests; the Redis
    breaker is the shared kind (built by the caller's wiring, closed by it)."""
    client = redis_client(redis_url, socket_timeout=0.5, connect_timeout=0.2)
    breaker = redis_breaker(client, timeout=primary_timeout, retry_interval=retry_interval)
    store = SessionStore(
        RedisSessionBackend(client, prefix=prefix),
        fallback,
        primary_breaker=breaker,
        retry_interval=retry_interval,  # the fallback's breaker, which the store builds
        ttl=300,
    )
    try:
        await store.reconcile()
        yield store
    finally:
        await store.aclose()
        await breaker.aclose()
        await client.aclose()


async def released_together(
    redis: RedisServer,
    pool: ProcessPoolExecutor,
    key: str,
    worker: Callable[..., Any],
    *args: Any,
    workers: int = 4,
) -> tuple[float, list[Any], float]:
    """Runs ``worker(url, key, ready, go, *args)`` in ``workers`` pool processes: once every
    one is up and connected (it pushes to ``ready``), all are released (``go``) with one wall
    time 0.2 s ahead. Returns that start, their results, and the seconds the Redis server
    waited for a CPU meanwhile."""
    ready, go = f"{key}:ready", f"{key}:go"
    runs = [
        asyncio.wrap_future(pool.submit(worker, redis.url, key, ready, go, *args))
        for _ in range(workers)
    ]
    client = redis_client(redis.url, socket_timeout=60)
    try:
        for _ in range(workers):
            assert await client.blpop([ready], timeout=60) is not None
        waited = cpu_wait(redis.pid or "self")
        start = time.time() + 0.2
        await client.rpush(go, *([repr(start)] * workers))
        results = await asyncio.gather(*runs)
        return start, results, cpu_wait(redis.pid or "self") - waited
    finally:
        await client.aclose()


def assert_shared_limit(
    start: float,
    runs: list[dict[str, float]],
    redis_wait: float,
    *,
    rate: float,
    burst: int,
    held: int,
) -> float:
    """The replicas' permits against the shared limit over the window they really spanned
    (the common start to the last permit granted): never more than ``rate * T + burst +
    held`` (the documented bound), and within 3 % of the rate once the time the machine held
    every replica (or Redis) off a CPU is taken out. Returns the rate achieved."""
    granted = sum(int(run["granted"]) for run in runs)
    elapsed = max(run["last"] for run in runs) - start
    starved = min(run["cpu_wait"] for run in runs) + redis_wait
    achieved = (granted - burst) / elapsed
    print(
        f"\nshared limit: per process {[int(run['granted']) for run in runs]} in {elapsed:.3f} s"
        f" ({starved:.3f} s starved of CPU): {achieved:.0f}/s of {rate:g}/s"
    )
    assert all(run["granted"] > 0 for run in runs)
    assert granted <= rate * elapsed + burst + held
    assert granted - burst >= 0.97 * rate * (elapsed - starved)
    return achieved


@asynccontextmanager
async def closing_limiters(made: list[RedisRateLimiter]) -> AsyncIterator[list[RedisRateLimiter]]:
    """Closes the limiters in ``made`` (each a replica with its own client) and their clients
    at the end, including any added to the list meanwhile."""
    try:
        yield made
    finally:
        for limiter in made:
            await limiter.aclose()
            await limiter.client.aclose()
