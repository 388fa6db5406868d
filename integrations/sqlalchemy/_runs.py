"""``SqlRunLedger``: the run ledger in a SQL table (SQLite embedded, PostgreSQL shared by
replicas), each operation one statement on an autocommit connection through a
:class:`PoolBulkhead`. A takeover is a conditional ``UPDATE`` (still running, lease expired):
of two replicas sweeping the same run, exactly one sees ``rowcount == 1``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    Index,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import Executable

from netra_resilience.engine import LedgerEntry
from netra_resilience.integrations.sqlalchemy._engine import PoolBulkhead

__all__ = ["SqlRunLedger", "run_ledger_table"]


def run_ledger_table(name: str = "netra_runs", *, schema: str | None = None) -> Table:
    """The ledger's table: one row per accepted run."""
    table = Table(
        name,
        MetaData(schema=schema),
        Column("run_id", String(64), primary_key=True),
        Column("owner", String(128), nullable=False),
        Column("status", String(16), nullable=False),
        Column("lease_until", Double, nullable=False),
    )
    Index(f"{name}_due", table.c.status, table.c.lease_until)
    return table


class SqlRunLedger:
    """The :class:`~netra_resilience.engine.RunLedger` on PostgreSQL or SQLite."""

    def __init__(self, database: AsyncEngine | PoolBulkhead, *, table: str | Table = "") -> None:
        self.database = database if isinstance(database, PoolBulkhead) else PoolBulkhead(database)
        self.table = table if isinstance(table, Table) else run_ledger_table(table or "netra_runs")
        t = self.table
        dialect = self.database.engine.dialect.name
        if dialect not in {"postgresql", "sqlite"}:
            raise ValueError(f"SqlRunLedger supports postgresql and sqlite, not {dialect!r}")
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # a retried accept (the first one timed out but landed) changes nothing
        self._accept = (
            upsert(t)
            .values(
                run_id=bindparam("r"),
                owner=bindparam("o"),
                status="running",
                lease_until=bindparam("l"),
            )
            .on_conflict_do_nothing(index_elements=[t.c.run_id])
        )
        adopt = upsert(t).values(
            run_id=bindparam("r"),
            owner=bindparam("o"),
            status="running",
            lease_until=bindparam("l"),
        )
        self._adopt = adopt.on_conflict_do_update(
            index_elements=[t.c.run_id],
            set_={
                "owner": adopt.excluded.owner,
                "status": "running",
                "lease_until": adopt.excluded.lease_until,
            },
        )
        self._renew = (
            update(t)
            .where(t.c.owner == bindparam("o"), t.c.status == "running")
            .values(lease_until=bindparam("l"))
        )
        self._finish = (
            update(t)
            .where(
                t.c.run_id == bindparam("r"), t.c.owner == bindparam("o"), t.c.status == "running"
            )
            .values(status=bindparam("s"))
        )
        self._expired = (
            select(t.c.run_id, t.c.owner, t.c.status, t.c.lease_until)
            .where(t.c.status == "running", t.c.lease_until < bindparam("now"))
            .order_by(t.c.lease_until)
            .limit(bindparam("limit"))
        )
        self._claim = (
            update(t)
            .where(
                t.c.run_id == bindparam("r"),
                t.c.status == "running",
                t.c.lease_until < bindparam("now"),
            )
            .values(owner=bindparam("o"), lease_until=bindparam("l"))
        )
        self._get = select(t.c.run_id, t.c.owner, t.c.status, t.c.lease_until).where(
            t.c.run_id == bindparam("r")
        )

    async def create_schema(self) -> None:
        """Create the table if it does not exist."""
        async with self.database.engine.begin() as conn:
            await conn.run_sync(self.table.metadata.create_all)

    async def _count(self, stmt: Executable, **params: Any) -> int:
        return await self.database.run(functools.partial(_rowcount, stmt, params))

    async def accept(self, run_id: str, owner: str, lease_until: float) -> None:
        await self._count(self._accept, r=run_id, o=owner, l=lease_until)

    async def renew(self, owner: str, lease_until: float) -> int:
        return await self._count(self._renew, o=owner, l=lease_until)

    async def finish(self, run_id: str, owner: str, status: str) -> bool:
        return await self._count(self._finish, r=run_id, o=owner, s=status) == 1

    async def expired(self, now: float, limit: int) -> Sequence[LedgerEntry]:
        rows = await self.database.run(
            functools.partial(_all, self._expired, {"now": now, "limit": limit})
        )
        return [_entry(row) for row in rows]

    async def claim(self, run_id: str, owner: str, now: float, lease_until: float) -> bool:
        return await self._count(self._claim, r=run_id, o=owner, now=now, l=lease_until) == 1

    async def adopt(self, run_id: str, owner: str, lease_until: float) -> None:
        await self._count(self._adopt, r=run_id, o=owner, l=lease_until)

    async def get(self, run_id: str) -> LedgerEntry | None:
        rows = await self.database.run(functools.partial(_all, self._get, {"r": run_id}))
        return _entry(rows[0]) if rows else None


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(str(row[0]), str(row[1]), str(row[2]), float(row[3]))


async def _rowcount(stmt: Executable, params: dict[str, Any], conn: AsyncConnection) -> int:
    result: Any = await conn.execute(stmt, params)
    return int(result.rowcount)


async def _all(
    stmt: Executable, params: dict[str, Any], conn: AsyncConnection
) -> Sequence[Row[Any]]:
    return (await conn.execute(stmt, params)).all()
