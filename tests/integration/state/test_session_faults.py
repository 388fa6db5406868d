"""Conversations under real faults: redis-server SIGKILL and SIGSTOP while users keep chatting,
invalid keys and bursts that must not degrade anyone else, the fallback carrying everyone.

Each simulated user chats like the example agent does: read the history, append the turn.
A turn is *acknowledged* when ``append`` returned; every acknowledged turn of every user must
be readable afterwards, in order. Timeouts are real and short (0.1 s on Redis); every fault is
bounded (a SIGSTOP is resumed in ``finally``, the load has a turn cap and a real-time guard).
"""

# Breaker state is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="unreachable"

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from netra_resilience import BulkheadRejectedError, InvalidOptionsError
from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import RedisSessionBackend, redis_client
from netra_resilience.integrations.sqlalchemy import PoolBulkhead, SqlSessionBackend
from netra_resilience.sessions import (
    InMemorySessionBackend,
    InvalidSessionKeyError,
    SessionStore,
    SessionStoreUnavailableError,
)
from tests.integration.state.helpers import redis_pg_store, sql_backend
from tests.servers import PostgresServer, RedisServer

GUARD = 20.0
"""Real seconds any one load may take before the test fails (it takes well under 2)."""


@dataclass
class Chat:
    """What the users saw: acknowledged turns per user, flags, refusals."""

    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    partial_reads: int = 0
    fallback_turns: int = 0
    not_stored: int = 0
    turns: int = 0
    done: bool = False


def conversation(user: str) -> str:
    return f"conversation:{user}"


async def chat(
    store: SessionStore,
    users: int,
    *,
    on_turn: Callable[[Chat], None],
    max_turns: int = 40,
    prefix: str = "u",
) -> Chat:
    """``users`` users chat concurrently until ``on_turn`` sets ``done`` (or ``max_turns``)."""
    state = Chat()

    async def user(name: str) -> None:
        acknowledged = state.acknowledged.setdefault(name, [])
        for n in range(max_turns):
            if state.done:
                return
            ctx = ResilienceContext("chat")
            history = await store.entries(conversation(name), context=ctx)
            if ctx.degradation.reason("sessions") == "partial":
                state.partial_reads += 1
            else:
                assert history == acknowledged[-len(history) :] if history else not acknowledged
            turn = f"{name}#{n}"
            try:
                await store.append(conversation(name), turn, context=ctx)
            except SessionStoreUnavailableError:
                assert ctx.degradation.reason("sessions") == "not_stored"  # flagged, never silent
                state.not_stored += 1
            else:
                acknowledged.append(turn)
                if ctx.degradation.reason("redis") == "fallback_database":
                    state.fallback_turns += 1
            state.turns += 1
            on_turn(state)

    async with asyncio.timeout(GUARD):  # a real-time bound on the whole load, not a wait
        await asyncio.gather(*(user(f"{prefix}{i}") for i in range(users)))
    return state


async def settle_recovery(store: SessionStore, max_calls: int = 20_000) -> None:
    """Keep serving reads (real I/O each) until the store wrote everything back on its own."""
    for _ in range(max_calls):
        await store.entries("recovery-probe")
        if store.primary_breaker.available and not store.pending:
            return
    raise AssertionError("the store did not recover")


async def assert_nothing_lost(store: SessionStore, redis_url: str, prefix: str, state: Chat) -> int:
    """Every acknowledged turn is readable through the store, and is in Redis itself."""
    raw = RedisSessionBackend(redis_client(redis_url), prefix=prefix)
    total = 0
    try:
        for user, turns in state.acknowledged.items():
            assert await store.entries(conversation(user)) == turns, user
            in_redis = await raw.entries(conversation(user), 1000)
            assert [e.data.decode() for e in in_redis] == [f'"{t}"' for t in turns], user
            total += len(turns)
    finally:
        await raw.client.aclose()
    return total


async def test_redis_sigkill_while_50_users_chat_loses_no_acknowledged_turn(
    durable_redis: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    prefix = f"{namespace}:"
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}", pool_size=10) as pg,
        redis_pg_store(durable_redis.url, pg, prefix=prefix) as store,
    ):
        marks: dict[str, int] = {}

        def fault(state: Chat) -> None:
            if state.turns == 100:
                durable_redis.kill()  # SIGKILL: mid-load, turns in flight
                marks["killed"] = state.turns
            elif state.turns == 250:
                durable_redis.start()  # same port; its AOF brings back what it acknowledged
                marks["restarted"] = state.turns
            elif state.turns >= 400:
                state.done = True

        state = await chat(store, 50, on_turn=fault)
        assert marks == {"killed": 100, "restarted": 250}
        assert state.fallback_turns > 0 and state.partial_reads > 0  # the outage was real
        assert state.not_stored == 0  # PostgreSQL took every turn Redis could not
        await settle_recovery(store)
        total = await assert_nothing_lost(store, durable_redis.url, prefix, state)
        assert total == state.turns
        print(
            f"SIGKILL, 50 users: {total} acknowledged turns all readable "
            f"({state.fallback_turns} stored in PostgreSQL during the outage, "
            f"{state.partial_reads} reads flagged partial)"
        )


@pytest.mark.parametrize(("users", "pause"), [(20, 0.3), (50, 0.6)])
async def test_redis_sigstop_while_users_chat_loses_no_acknowledged_turn(
    fault_redis: RedisServer,
    postgres_server: PostgresServer,
    namespace: str,
    users: int,
    pause: float,
) -> None:
    """0.1: a 0.3 s pause with 20 users erased 7 histories (0.6 s: 19 of 20)."""
    prefix = f"{namespace}:"
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}", pool_size=10) as pg,
        redis_pg_store(fault_redis.url, pg, prefix=prefix) as store,
    ):
        marks: dict[str, float] = {}

        def fault(state: Chat) -> None:
            if state.turns == 2 * users:
                fault_redis.pause()
                marks["paused"] = time.monotonic()
            elif "paused" in marks and "resumed" not in marks:
                if time.monotonic() - marks["paused"] >= pause:
                    fault_redis.resume()
                    marks["resumed"] = state.turns
            elif "resumed" in marks and state.turns >= marks["resumed"] + 3 * users:
                state.done = True

        try:
            state = await chat(store, users, on_turn=fault, max_turns=400)
        finally:
            fault_redis.resume()  # bounded even if the load failed
        assert "resumed" in marks and state.partial_reads > 0
        assert state.not_stored == 0
        await settle_recovery(store)
        total = await assert_nothing_lost(store, fault_redis.url, prefix, state)
        assert total == state.turns
        print(
            f"SIGSTOP {pause} s, {users} users: {total} acknowledged turns all readable "
            f"({state.fallback_turns} stored in PostgreSQL meanwhile)"
        )


async def test_one_short_timeout_does_not_open_the_redis_breaker(
    fault_redis: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}") as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as store,
    ):
        await store.append("c", "before")
        fault_redis.pause()
        try:
            ctx = ResilienceContext("chat")
            await store.append("c", "during", context=ctx)  # one 0.1 s timeout, then PostgreSQL
        finally:
            fault_redis.resume()
        assert ctx.degradation.reason("redis") == "fallback_database"
        assert store.primary_breaker.available  # one timeout is a blip, not an outage
        assert await store.entries("c") == ["before", "during"]


async def test_invalid_keys_are_refused_before_any_backend_and_degrade_no_one(
    redis_server: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}") as pg,
        redis_pg_store(redis_server.url, pg, prefix=f"{namespace}:") as store,
    ):
        for user in range(10):
            await store.append(conversation(f"ok{user}"), "hello")
        bad_keys = [conversation(u) for u in ("u\x00ser", "x" * 10_000, "\ud800")] + [""]
        for bad in bad_keys:
            for _ in range(5):
                with pytest.raises(InvalidSessionKeyError) as refused:
                    await store.append(bad, "turn")
                assert "\x00" not in str(refused.value) and len(str(refused.value)) < 100
                with pytest.raises(InvalidSessionKeyError):
                    await store.entries(bad)
                with pytest.raises(InvalidSessionKeyError):
                    await store.put(bad, {"n": 1})
        assert store.primary_breaker.available
        assert store.fallback_breaker is not None and store.fallback_breaker.available
        for user in range(10):  # everyone else reads and writes as before
            ctx = ResilienceContext("chat")
            await store.append(conversation(f"ok{user}"), "again", context=ctx)
            assert await store.entries(conversation(f"ok{user}")) == ["hello", "again"]
            assert ctx.degradation.as_dict() == {}


async def test_a_burst_past_the_fallback_pool_leaves_everyone_else_working(
    fault_redis: RedisServer, postgres_server: PostgresServer, namespace: str
) -> None:
    """Redis down; a narrow fallback pool (2 seats, 3 queued) takes a burst of 60 users:
    most are turned away (flagged, told), and the fallback's breaker does not open."""
    async with (
        sql_backend(
            postgres_server.url, f"sessions_{namespace}", max_concurrency=2, max_queue=3
        ) as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as store,
    ):
        for user in range(10):
            await store.append(conversation(f"ok{user}"), "before")
        fault_redis.kill()
        await store.reconcile()
        contexts = [ResilienceContext("chat") for _ in range(60)]
        results = await asyncio.gather(
            *(
                store.append(conversation(f"burst{i}"), "turn", context=ctx)
                for i, ctx in enumerate(contexts)
            ),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, SessionStoreUnavailableError)]
        assert refused and all(r is None or r in refused for r in results)
        for result, ctx in zip(results, contexts, strict=True):
            if result is not None:
                assert ctx.degradation.reason("sessions") == "not_stored"
                assert isinstance(result.__cause__, BulkheadRejectedError)  # shed, not failed
        assert store.fallback_breaker is not None and store.fallback_breaker.available
        for user in range(10):  # one at a time: the pool is free again
            ctx = ResilienceContext("chat")
            await store.append(conversation(f"ok{user}"), "after", context=ctx)
            assert ctx.degradation.reason("sessions") is None
            history = await store.entries(conversation(f"ok{user}"), context=ctx)
            assert history[-1] == "after"
        print(f"burst of 60 past a 2+3 pool: {len(refused)} refused, breaker closed")


async def fallback_serves(store: SessionStore, users: int) -> tuple[int, float, float]:
    """``users`` concurrent chat turns (read, append) with Redis down: (served, s, max s)."""
    latencies: list[float] = []

    async def turn(i: int) -> None:
        start = time.perf_counter()
        ctx = ResilienceContext("chat")
        await store.entries(conversation(f"load{i}"), context=ctx)
        await store.append(conversation(f"load{i}"), "turn", context=ctx)
        assert ctx.degradation.reason("redis") == "fallback_database"
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    results = await asyncio.gather(*(turn(i) for i in range(users)), return_exceptions=True)
    elapsed = time.perf_counter() - start
    served = sum(1 for r in results if r is None)
    return served, elapsed, max(latencies, default=0.0)


@pytest.mark.parametrize("users", [150, 300])
async def test_with_redis_stopped_the_fallback_serves_every_concurrent_user(
    fault_redis: RedisServer, postgres_server: PostgresServer, namespace: str, users: int
) -> None:
    """0.1 refused all 150 (and 290 of 300): a pool-sized queue (10 seats + 100) turned the
    burst away. The queue is now bounded by its deadline, not by a count."""
    async with (
        sql_backend(postgres_server.url, f"sessions_{namespace}", pool_size=10) as pg,
        redis_pg_store(fault_redis.url, pg, prefix=f"{namespace}:") as store,
    ):
        fault_redis.kill()
        await store.reconcile()
        served, elapsed, slowest = await fallback_serves(store, users)
        assert served == users
        assert store.fallback_breaker is not None and store.fallback_breaker.available
        print(
            f"Redis stopped, {users} concurrent users: {served} served by PostgreSQL "
            f"in {elapsed * 1000:.0f} ms (slowest turn {slowest * 1000:.0f} ms)"
        )


async def test_a_queue_sized_by_count_would_refuse_them(
    postgres_server: PostgresServer, namespace: str
) -> None:
    """The control: the 0.1 sizing (pool + 10x queue) refuses part of the same burst."""
    async with sql_backend(
        postgres_server.url, f"sessions_{namespace}", pool_size=10, max_queue=100
    ) as pg:
        store = SessionStore(pg, dependency="database", ttl=300)
        try:
            await store.reconcile()
            results = await asyncio.gather(
                *(store.append(conversation(f"u{i}"), "t") for i in range(150)),
                return_exceptions=True,
            )
        finally:
            await store.aclose()
        assert any(isinstance(r, SessionStoreUnavailableError) for r in results)


async def test_the_breakers_wait_the_queue_deadline_on_top_of_their_timeout() -> None:
    """A full pool must turn callers away as a bulkhead rejection (not counted), before the
    breaker's own timeout (counted) could fire: the store adds the deadline, or refuses."""
    engine = create_async_engine("sqlite+aiosqlite://")
    backend = SqlSessionBackend(PoolBulkhead(engine, queue_timeout=1.5))
    store = SessionStore(InMemorySessionBackend(), backend, fallback_timeout=1.0)
    try:
        assert backend.queue_timeout == 1.5
        assert store.fallback_breaker is not None
        assert store.fallback_breaker.timeout == pytest.approx(2.5)
        short = BackendBreaker(backend.ping, timeout=1.5)
        with pytest.raises(InvalidOptionsError, match="fallback_breaker"):
            SessionStore(InMemorySessionBackend(), backend, fallback_breaker=short)
    finally:
        await store.aclose()
        await engine.dispose()
