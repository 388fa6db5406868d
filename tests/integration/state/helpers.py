"""Builders shared by the state tests (real servers; see conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from netra_resilience.integrations.redis import (
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
