"""SqlRunLedger on SQLite and a real PostgreSQL: the ledger contract, and a takeover race
(eight sweepers claim the same expired runs at once: each run is won exactly once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netra_resilience.engine import LedgerEntry, RunLedger
from netra_resilience.integrations.sqlalchemy import SqlRunLedger, create_pooled_engine
from tests.servers import PostgresServer


@pytest.fixture(params=["postgresql", "sqlite"])
async def ledger(
    request: pytest.FixtureRequest, postgres_server: PostgresServer, tmp_path: Path, namespace: str
) -> AsyncIterator[SqlRunLedger]:
    url = (
        postgres_server.url
        if request.param == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path}/runs.db"
    )
    engine = create_pooled_engine(url)
    made = SqlRunLedger(engine, table=f"runs_{namespace}")
    await made.create_schema()
    try:
        yield made
    finally:
        await made.database.aclose()
        await engine.dispose()


async def test_ledger_contract(ledger: SqlRunLedger) -> None:
    assert isinstance(ledger, RunLedger)
    await ledger.accept("r1", "a", 100.0)
    await ledger.accept("r2", "a", 100.0)
    await ledger.accept("r3", "b", 100.0)
    await ledger.accept("r3", "c", 900.0)  # a retried accept changes nothing
    assert await ledger.get("r1") == LedgerEntry("r1", "a", "running", 100.0)
    assert await ledger.renew("a", 150.0) == 2
    assert await ledger.finish("r2", "a", "finished")
    assert not await ledger.finish("r2", "a", "finished")  # once
    assert not await ledger.finish("r3", "a", "finished")  # not a's
    assert [e.run_id for e in await ledger.expired(120.0, 10)] == ["r3"]
    assert not await ledger.claim("r1", "b", 120.0, 200.0)  # a's lease is still good
    assert await ledger.claim("r3", "c", 120.0, 200.0)
    assert await ledger.get("r3") == LedgerEntry("r3", "c", "running", 200.0)
    assert await ledger.get("missing") is None


async def test_a_durable_runs_executor_adopts_it(ledger: SqlRunLedger) -> None:
    await ledger.adopt("d1", "a", 100.0)  # a new run: recorded like an accept
    assert await ledger.get("d1") == LedgerEntry("d1", "a", "running", 100.0)
    assert await ledger.claim("d1", "b", 120.0, 200.0)  # a died; b's sweep resumes it
    await ledger.adopt("d1", "c", 300.0)  # DBOS runs it on c: c owns it, whoever held it
    assert await ledger.get("d1") == LedgerEntry("d1", "c", "running", 300.0)
    assert not await ledger.finish("d1", "b", "ok")
    assert await ledger.finish("d1", "c", "ok")


async def test_concurrent_sweepers_win_each_run_once(ledger: SqlRunLedger) -> None:
    runs = [f"run-{n}" for n in range(30)]
    for run in runs:
        await ledger.accept(run, "dead", 10.0)

    async def sweep(owner: str) -> list[str]:
        due = await ledger.expired(20.0, 100)
        return [e.run_id for e in due if await ledger.claim(e.run_id, owner, 20.0, 50.0)]

    results = await asyncio.gather(*(sweep(f"s{n}") for n in range(8)))
    claimed = [run for won in results for run in won]
    assert sorted(claimed) == sorted(runs)  # every run taken over, none twice
