"""Session store on real Redis and PostgreSQL/SQLite: backends, outages, write-back, health."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from netra_resilience.context import ResilienceContext
from netra_resilience.health import Dependency, ServiceRegistry
from netra_resilience.integrations.redis import RedisSessionBackend, redis_client
from netra_resilience.integrations.sqlalchemy import SqlSessionBackend
from netra_resilience.sessions import (
    SessionBackend,
    SessionRecord,
    SessionStore,
    SessionStoreUnavailableError,
)
from tests.integration.state.helpers import redis_pg_store, sql_backend
from tests.servers import PostgresServer, RedisServer


async def check_backend_contract(backend: SessionBackend) -> None:
    now = time.time()
    assert await backend.save(SessionRecord("a", 5, b"x", now + 60), now)
    assert not await backend.save(SessionRecord("a", 4, b"older", now + 60), now)
    assert not await backend.save(SessionRecord("a", 5, b"same", now + 60), now)
    assert await backend.load("a") == SessionRecord("a", 5, b"x", now + 60)
    assert await backend.save(SessionRecord("a", 6, None, now + 60), now)  # tombstone
    assert (await backend.load("a")) == SessionRecord("a", 6, None, now + 60)
    assert not await backend.save(SessionRecord("a", 5, b"resurrect", now + 60), now)
    assert await backend.load("missing") is None
    await backend.ping()


@pytest.fixture(params=["postgresql", "sqlite"])
async def sql(
    request: pytest.FixtureRequest, postgres_server: PostgresServer, tmp_path: Path, namespace: str
):
    url = (
        postgres_server.url
        if request.param == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path}/s.db"
    )
    async with sql_backend(url, f"sessions_{namespace}") as backend:
        yield backend


async def test_sql_backend_contract_and_write_back_listing(sql: SqlSessionBackend) -> None:
    await check_backend_contract(sql)
    now = time.time()
    for i in range(5):
        await sql.save(SessionRecord(f"k{i}", 10, b"v", now + 60), now)
    assert await sql.has_pending()
    first = await sql.pending(after="", limit=3)
    rest = await sql.pending(after=first[-1].key, limit=3)
    assert [r.key for r in [*first, *rest]] == ["a", "k0", "k1", "k2", "k3", "k4"]
    await sql.mark_synced("k0", 9, now)  # another version: stays pending
    await sql.mark_synced("k1", 10, now)
    keys = [r.key for r in await sql.pending(after="", limit=100)]
    assert keys == ["a", "k0", "k2", "k3", "k4"]
    assert await sql.load("k1") is not None  # synced records stay readable until purged
    await sql.save(SessionRecord("k2", 11, b"v", now + 60), now)
    await sql.mark_synced("k2", 11, now)
    await sql.save(SessionRecord("k2", 12, b"newer", now + 60), now)  # pending again
    assert "k2" in [r.key for r in await sql.pending(after="", limit=100)]
    assert await sql.purge_synced(now + 1) == 1
    assert await sql.load("k1") is None
    await sql.save(SessionRecord("old", 1, b"v", now - 1), now)
    assert await sql.purge_expired(now) == 1


async def test_redis_backend_contract_and_ttl(redis_server: RedisServer, namespace: str) -> None:
    client = redis_client(redis_server.url)
    try:
        backend = RedisSessionBackend(client, prefix=f"{namespace}:")
        await check_backend_contract(backend)
        now = time.time()
        await backend.save(SessionRecord("ttl", 1, b"v", now + 30), now)
        assert 29_000 < await client.pttl(f"{namespace}:ttl") <= 30_000
        assert not await backend.save(SessionRecord("gone", 1, b"v", now - 1), now)
    finally:
        await client.aclose()


async def test_sqlite_is_the_embedded_default(tmp_path: Path, namespace: str) -> None:
    async with sql_backend(f"sqlite+aiosqlite:///{tmp_path}/embedded.db", "sessions") as backend:
        store = SessionStore(backend)  # no Redis at all
        try:
            await store.put("conv-1", {"messages": ["hi"]})
            assert await store.get("conv-1") == {"messages": ["hi"]}
            await store.delete("conv-1")
            assert await store.get("conv-1") is None
            await store.check()
        finally:
            await store.aclose()


async def run_load(
    store: SessionStore,
    *,
    workers: int,
    ops: int,
    fault_at: int,
    fault: Any,
) -> tuple[dict[str, Any], set[str], list[float]]:
    """Writers/readers on overlapping keys; ``fault()`` runs mid-load.

    Returns the last value written per key, the keys whose last write went to the fallback,
    and per-call latencies. Every call must succeed (no unhandled error).
    """
    last: dict[str, Any] = {}
    via_fallback: set[str] = set()
    latencies: list[float] = []
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        for i in range(ops):
            key = f"w{w}-{i % 7}"
            value = {"w": w, "i": i}
            ctx = ResilienceContext("session")
            start = time.perf_counter()
            await store.put(key, value, context=ctx)
            got = await store.get(key)
            latencies.append(time.perf_counter() - start)
            last[key] = value
            if ctx.degradation.reason("redis") == "fallback_database":  # the put fell back
                via_fallback.add(key)
                assert got == value  # read-your-write holds inside the fallback
            else:
                via_fallback.discard(key)
            done += 1
            if done == fault_at:
                fault()

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return last, via_fallback, latencies


async def settle_recovery(store: SessionStore, max_calls: int = 20_000) -> int:
    """Keep serving reads (real fallback I/O each) until the store recovered on its own."""
    for calls in range(max_calls):
        await store.get("recovery-probe")
        if store.primary_breaker.available and not store.pending:
            return calls
    raise AssertionError("the store did not recover")


async def test_redis_sigkill_mid_load_falls_back_and_writes_back_after_restart(
    fault_redis: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}") as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as store,
    ):
        last, via_fallback, latencies = await run_load(
            store, workers=8, ops=60, fault_at=120, fault=fault_redis.kill
        )
        assert not store.primary_breaker.available and via_fallback
        assert await pg.has_pending()

        fault_redis.start()  # same port, empty: SIGKILL lost everything Redis held
        await settle_recovery(store)
        assert not await pg.has_pending()
        for key in via_fallback:  # every session written during the outage survived
            assert await store.get(key) == last[key]
        print(f"SIGKILL: max call {max(latencies) * 1000:.1f} ms over {len(latencies)} calls")


async def test_redis_sigstop_mid_load_then_sigcont_nothing_lost_nothing_stale(
    fault_redis: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}") as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as store,
    ):
        await store.put("deleted-in-outage", "old")
        last, via_fallback, latencies = await run_load(
            store, workers=8, ops=60, fault_at=120, fault=fault_redis.pause
        )
        assert not store.primary_breaker.available and via_fallback
        await store.delete("deleted-in-outage")

        fault_redis.resume()
        await settle_recovery(store)
        # Redis kept its data: it held older versions of the keys rewritten during the
        # outage. Every key now reads its last written value, the deleted one stays deleted.
        for key, value in last.items():
            assert await store.get(key) == value, key
        assert await store.get("deleted-in-outage") is None
        raw = RedisSessionBackend(redis_client(fault_redis.url), prefix=f"{namespace}:")
        try:
            for key in via_fallback:
                record = await raw.load(key)
                assert record is not None and record.data is not None
        finally:
            await raw.client.aclose()
        print(f"SIGSTOP: max call {max(latencies) * 1000:.1f} ms over {len(latencies)} calls")


async def test_two_stores_share_sessions_and_a_peer_writes_back_the_other_ones_outage(
    fault_redis: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}") as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as a,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as b,
    ):
        await a.put("shared", 1)
        assert await b.get("shared") == 1
        fault_redis.pause()
        await a.put("shared", 2)  # A pays one timeout, then writes to PostgreSQL
        assert await b.get("shared") == 2  # B falls back too and sees A's write
        fault_redis.resume()
        report = await b.reconcile()  # B writes back what A wrote during the outage
        assert report.complete and not await pg.has_pending()
        assert await a.get("shared") == 2 and await b.get("shared") == 2


async def test_postgres_stopped_is_reported_by_the_health_check(
    redis_server: RedisServer, fault_postgres: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(fault_postgres.url, f"sessions_{namespace}") as pg,
        redis_pg_store(redis_server.url, pg, prefix=f"{namespace}:") as store,
    ):
        registry = ServiceRegistry(
            [
                Dependency("redis", "optional", check=store.check_primary),
                Dependency("postgres", "critical", check=store.check_fallback, standby_for="redis"),
            ]
        )
        monitor = registry.monitor
        await monitor.probe_all()
        assert monitor.report().ready()
        fault_postgres.stop()
        with pytest.raises(Exception):  # noqa: B017 - any driver error: the point is it raises
            await store.check_fallback()
        await monitor.probe_all()
        report = monitor.report()
        component = report.component("postgres")
        assert component is not None and component.status == "fail"
        # Redis serves: nothing on the request path waits on PostgreSQL right now.
        assert component.criticality == "important" and report.status == "warn"
        assert report.ready()
        await store.check()  # Redis still serves: the store as a whole is up
        await store.put("s", 1)
        assert await store.get("s") == 1
        fault_postgres.start()
        await store.check_fallback()  # kept connections were dead: reconnected transparently


async def test_both_backends_down_fail_cleanly(
    fault_redis: RedisServer, fault_postgres: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(fault_postgres.url, f"sessions_{namespace}") as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as store,
    ):
        fault_redis.kill()
        fault_postgres.stop()
        ctx = ResilienceContext("session")
        with pytest.raises(SessionStoreUnavailableError):
            await store.put("s", 1, context=ctx)
        assert ctx.degradation.reason("redis") == "unavailable"
        with pytest.raises(Exception):  # noqa: B017
            await store.check()
