"""One BackendBreaker per backend, shared by everything that talks to it, on real servers:
the Redis breaker store, limiter, cache and session store on one Redis; the session store on
PostgreSQL. It opens on outages, not on a request's own bad data or a local rejection."""

# Breaker state is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="unreachable"

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from netra_resilience import PipelineBuilder
from netra_resilience.cache import CacheEntry
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.context import ResilienceContext, use_context
from netra_resilience.health import Dependency, HealthStatus, ServiceRegistry
from netra_resilience.integrations.redis import (
    RedisCacheBackend,
    RedisCircuitStateStore,
    RedisRateLimiter,
    RedisSessionBackend,
    redis_breaker,
    redis_client,
)
from netra_resilience.integrations.sqlalchemy import PoolBulkhead, SqlSessionBackend
from netra_resilience.sessions import (
    InMemorySessionBackend,
    InvalidSessionKeyError,
    SessionRecord,
    SessionStore,
    SessionStoreUnavailableError,
)
from netra_resilience.testing import FakeClock, RecordingListener
from tests.integration.state.helpers import sql_backend
from tests.servers import PostgresServer, RedisServer


async def ok() -> str:
    return "ok"


async def ping_calls(admin: Redis) -> int:
    stats = await admin.info("commandstats")
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def test_one_redis_one_breaker_for_store_limiter_cache_and_sessions(
    fault_redis: RedisServer, namespace: str, clock: FakeClock
) -> None:
    redis = redis_client(fault_redis.url, connect_timeout=0.2)
    admin = redis_client(fault_redis.url)
    listener = RecordingListener()
    breaker = redis_breaker(redis, clock=clock, telemetry=listener)
    store = RedisCircuitStateStore(redis, breaker=breaker, prefix=f"{namespace}:", clock=clock)
    limiter = RedisRateLimiter(redis, breaker=breaker, key=namespace, rate=100, burst=10)
    cache = RedisCacheBackend(redis, breaker=breaker, prefix=f"{namespace}:cache:")
    fallback = InMemorySessionBackend()
    sessions = SessionStore(
        RedisSessionBackend(redis, prefix=f"{namespace}:s:"),
        fallback,
        primary_breaker=breaker,
        clock=clock,
    )
    llm = (
        PipelineBuilder("llm", clock=clock)
        .add_circuit_breaker(CircuitBreakerOptions(store=store))
        .build()
    )
    registry = ServiceRegistry([Dependency("redis", "important", breaker=breaker)], clock=clock)
    entry = CacheEntry("answer", 1.0, 2.0, 3.0)
    try:
        await sessions.reconcile()
        ctx = ResilienceContext("chat")
        with use_context(ctx):
            await cache.set("k", entry, 60)
            await limiter.acquire(1)
            assert await llm.execute(ok, context=ctx) == "ok"
            await sessions.put("s0", "before", context=ctx)
        assert not ctx.degradation  # everything on Redis

        fault_redis.kill()
        ctx = ResilienceContext("chat")
        with use_context(ctx):
            assert await cache.get("k") is None  # refused: first failure, memory answers
            assert breaker.available
            await limiter.acquire(1)  # second failure, counted by the same breaker
            assert breaker.available
            assert await llm.execute(ok, context=ctx) == "ok"  # third: Redis is skipped now
            assert not breaker.available
            await sessions.put("s1", "during", context=ctx)  # straight to the fallback
        assert ctx.degradation.as_dict() == {"redis": "fallback_database"}
        assert "s1" in fallback.records and sessions.pending

        # Health and telemetry see the one breaker.
        (component,) = registry.monitor.report().components
        assert component.circuit_state == "open" and component.status is HealthStatus.FAIL
        assert registry.monitor.report().status is HealthStatus.WARN
        assert listener.names() == ["circuit_opened"]
        assert listener.events[0].source.pipeline == "redis"

        fault_redis.start()  # a fresh server: commandstats count from here
        pings = await ping_calls(admin)  # the fixture's readiness check
        assert await breaker.probe_now()
        assert listener.names()[-1] == "circuit_closed"
        assert await ping_calls(admin) == pings + 1  # one probe for all four users
        await store.wait_resync()
        await limiter.drain()
        await sessions.reconcile()
        assert not sessions.pending
        assert await sessions.get("s1") == "during"  # written back into Redis
        assert await redis.exists(f"{namespace}:s:s1") == 1
        ctx = ResilienceContext("chat")
        with use_context(ctx):
            await cache.set("k", entry, 60)
            assert await cache.get("k") == entry
            assert await llm.execute(ok, context=ctx) == "ok"
        assert not ctx.degradation
    finally:
        await sessions.aclose()
        await store.aclose()
        await limiter.aclose()
        await breaker.aclose()
        await redis.aclose()
        await admin.aclose()


async def test_a_commands_own_error_does_not_open_the_redis_breaker(
    redis_server: RedisServer, namespace: str
) -> None:
    redis = redis_client(redis_server.url)
    breaker = redis_breaker(redis)
    sessions = SessionStore(
        RedisSessionBackend(redis, prefix=f"{namespace}:"),
        InMemorySessionBackend(),
        primary_breaker=breaker,
    )
    try:
        await redis.rpush(f"{namespace}:wrong-type", "x")  # HMGET on a list: WRONGTYPE
        for _ in range(5):
            await sessions.get("wrong-type")  # the fallback answers; Redis is healthy
        assert breaker.available
        await sessions.put("fine", 1)
        assert await redis.exists(f"{namespace}:fine") == 1
    finally:
        await sessions.aclose()
        await redis.aclose()


@pytest.fixture
async def pg_table(
    postgres_server: PostgresServer, namespace: str
) -> AsyncIterator[SqlSessionBackend]:
    async with sql_backend(postgres_server.url, f"sessions_{namespace}") as backend:
        yield backend


async def test_a_requests_invalid_data_does_not_open_the_database_breaker(
    pg_table: SqlSessionBackend,
) -> None:
    store = SessionStore(pg_table, dependency="database")  # PostgreSQL alone
    try:
        for _ in range(5):  # the store refuses the key before any backend sees it
            with pytest.raises(InvalidSessionKeyError) as invalid:
                await store.put("bad\x00key", {"n": 1})
            assert "\x00" not in str(invalid.value)
        # Past the store's check, PostgreSQL itself refuses a NUL byte in text: a
        # statement error (the request's fault), which the breaker does not count.
        record = SessionRecord("bad\x00key", 1, b"{}", None)
        for _ in range(5):
            with pytest.raises(Exception) as refused:  # asyncpg's DataError, wrapped
                await store.primary_breaker.call(functools.partial(pg_table.save, record, 0.0))
            assert not isinstance(refused.value, TimeoutError | OSError)
        assert store.primary_breaker.available
        await store.put("good", {"n": 2})
        assert await store.get("good") == {"n": 2}
    finally:
        await store.aclose()


async def test_a_full_pool_bulkhead_does_not_open_the_database_breaker(
    pg_table: SqlSessionBackend,
) -> None:
    narrow = SqlSessionBackend(
        PoolBulkhead(pg_table.database.engine, max_concurrency=1, max_queue=0),
        table=pg_table.table,
    )
    store = SessionStore(narrow, dependency="database")
    try:
        results = await asyncio.gather(
            *(store.put(f"k{i}", i) for i in range(10)), return_exceptions=True
        )
        rejected = [r for r in results if isinstance(r, SessionStoreUnavailableError)]
        assert len(rejected) >= 3  # local rejections, more than the threshold
        assert store.primary_breaker.available
        assert store.primary_breaker.state is CircuitState.CLOSED
    finally:
        await store.aclose()
        await narrow.database.aclose()
