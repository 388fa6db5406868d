"""The bulkhead in front of a real PostgreSQL pool: 10x concurrency, cancellation, rejections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import OperationalError

from netra_resilience.context import ResilienceContext, use_context
from netra_resilience.exceptions import BulkheadRejectedError
from netra_resilience.integrations.sqlalchemy import (
    PoolBulkhead,
    create_pooled_engine,
    sqlalchemy_should_handle,
)
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock
from tests.servers import PostgresServer

POOL = 5
ROWS_PER_TX = 3


@pytest.fixture
async def table(postgres_server: PostgresServer, namespace: str) -> AsyncIterator[Table]:
    t = Table(
        f"rows_{namespace}",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("tx", String(40), nullable=False),
    )
    engine = create_pooled_engine(postgres_server.url, pool_size=POOL)
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.create_all)
    await engine.dispose()
    yield t


async def count(bulkhead: PoolBulkhead, table: Table) -> int:
    async with bulkhead.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def write_tx(bulkhead: PoolBulkhead, table: Table, tx: str) -> None:
    async with bulkhead.begin() as conn:
        for _ in range(ROWS_PER_TX):  # several statements: a partial write would show
            await conn.execute(insert(table).values(tx=tx))


async def test_ten_times_the_pool_is_queued_or_cleanly_rejected_and_counts_are_exact(
    postgres_server: PostgresServer, table: Table
) -> None:
    engine = create_pooled_engine(postgres_server.url, pool_size=POOL)
    bulkhead = PoolBulkhead(engine, max_queue=4 * POOL, queue_timeout=None, name="pg")
    try:
        ctx = ResilienceContext("write")
        with use_context(ctx):
            results = await asyncio.gather(
                *(write_tx(bulkhead, table, f"t{i}") for i in range(10 * POOL)),
                return_exceptions=True,
            )
        rejected = [r for r in results if isinstance(r, BaseException)]
        # 5 run, 20 queue (FIFO) and then run, the other 25 are refused before touching the pool
        assert len(rejected) == 5 * POOL
        assert all(isinstance(r, BulkheadRejectedError) and r.dependency == "pg" for r in rejected)
        assert ctx.degradation.reason("pg") == "bulkhead_full"
        assert await count(bulkhead, table) == 5 * POOL * ROWS_PER_TX
        assert bulkhead.limiter.in_flight == 0 and bulkhead.limiter.queued == 0

        # With room to queue them all, every one of the 10x burst is served, none fails.
        queued_all = PoolBulkhead(engine, max_queue=10 * POOL, queue_timeout=None)
        await asyncio.gather(*(write_tx(queued_all, table, f"q{i}") for i in range(10 * POOL)))
        assert await count(bulkhead, table) == (5 + 10) * POOL * ROWS_PER_TX
    finally:
        await bulkhead.aclose()
        await engine.dispose()


async def test_a_cancelled_transaction_leaves_no_rows_and_gives_its_seat_back(
    postgres_server: PostgresServer, table: Table
) -> None:
    engine = create_pooled_engine(postgres_server.url, pool_size=POOL)
    bulkhead = PoolBulkhead(engine)
    inserted = asyncio.Event()

    async def half_written() -> None:
        async with bulkhead.begin() as conn:
            await conn.execute(insert(table).values(tx="partial"))
            inserted.set()
            await asyncio.Event().wait()  # cancelled here, mid-transaction

    try:
        task = asyncio.ensure_future(half_written())
        await inserted.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await count(bulkhead, table) == 0
        assert bulkhead.limiter.in_flight == 0
    finally:
        await bulkhead.aclose()
        await engine.dispose()


async def test_queue_timeout_rejects_with_the_dependency_named(
    postgres_server: PostgresServer, table: Table, clock: FakeClock
) -> None:
    engine = create_pooled_engine(postgres_server.url, pool_size=2)
    bulkhead = PoolBulkhead(engine, max_queue=5, queue_timeout=1.5, clock=clock, name="pg")
    release = asyncio.Event()
    both_holding = asyncio.Event()
    holding = 0

    async def hold() -> None:
        nonlocal holding
        async with bulkhead.begin() as conn:
            await conn.execute(insert(table).values(tx="held"))
            holding += 1
            if holding == 2:
                both_holding.set()
            await release.wait()

    try:
        holders = [asyncio.ensure_future(hold()) for _ in range(2)]
        await both_holding.wait()  # both seats taken
        waiter = asyncio.ensure_future(write_tx(bulkhead, table, "late"))
        await clock.settle()
        assert bulkhead.limiter.queued == 1
        await clock.advance(1.5)
        with pytest.raises(BulkheadRejectedError) as info:
            await waiter
        assert info.value.dependency == "pg"
        release.set()
        await asyncio.gather(*holders)
        assert await count(bulkhead, table) == 2
    finally:
        await bulkhead.aclose()
        await engine.dispose()


async def test_kept_connections_survive_a_database_restart(
    fault_postgres: PostgresServer,
) -> None:
    engine = create_pooled_engine(fault_postgres.url, pool_size=3, pool_pre_ping=False)
    bulkhead = PoolBulkhead(engine)
    try:
        await asyncio.gather(*(bulkhead.check() for _ in range(3)))  # three kept connections
        fault_postgres.stop()
        with pytest.raises((OperationalError, OSError)) as info:
            await bulkhead.check()
        assert sqlalchemy_should_handle(Outcome(None, info.value))
        fault_postgres.start()
        await asyncio.gather(*(bulkhead.check() for _ in range(3)))
    finally:
        await bulkhead.aclose()
        await engine.dispose()


def test_should_handle_matches_connection_errors_only() -> None:
    lost = OperationalError("SELECT 1", {}, ConnectionResetError())
    assert sqlalchemy_should_handle(Outcome(None, lost))
    assert not sqlalchemy_should_handle(Outcome(None, ValueError("bug")))
