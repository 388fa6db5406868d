"""``SqlSessionBackend``: sessions in one SQL table via SQLAlchemy 2 async.

PostgreSQL (``postgresql+asyncpg://``) is the fallback behind Redis; SQLite
(``sqlite+aiosqlite:///sessions.db``) is the embedded default when there is no Redis at all.
Every operation is one statement on an autocommit connection (no BEGIN/COMMIT round trips: a
single upsert is atomic on its own), checked out through a :class:`PoolBulkhead` so a burst
queues in front of the pool instead of failing inside it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    delete,
    null,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import Executable

from netra_resilience.integrations.sqlalchemy._engine import PoolBulkhead
from netra_resilience.integrations.sqlalchemy._errors import sqlalchemy_should_handle
from netra_resilience.predicates import OutcomePredicate
from netra_resilience.sessions import SessionRecord

__all__ = ["SqlSessionBackend", "session_table"]


def session_table(name: str = "netra_sessions", *, schema: str | None = None) -> Table:
    """The table layout: ``key`` (primary key), ``version``, ``data`` (NULL = tombstone),
    ``expires_at`` and ``synced_at`` (epoch seconds; NULL = not yet written back to the
    primary). Add it to your Alembic metadata if you manage migrations."""
    return Table(
        name,
        MetaData(schema=schema),
        Column("key", String(255), primary_key=True),
        Column("version", BigInteger, nullable=False),
        Column("data", LargeBinary, nullable=True),
        Column("expires_at", Double, nullable=True),
        Column("synced_at", Double, nullable=True),
    )


class SqlSessionBackend:
    """Session backend on PostgreSQL or SQLite; implements the fallback protocol too."""

    unavailable: OutcomePredicate = sqlalchemy_should_handle
    """Which errors mean the database is down (what a session store's own breaker counts):
    not a statement's bad data, not a full :class:`PoolBulkhead`."""

    def __init__(self, database: AsyncEngine | PoolBulkhead, *, table: str | Table = "") -> None:
        self.database = database if isinstance(database, PoolBulkhead) else PoolBulkhead(database)
        self.table = table if isinstance(table, Table) else session_table(table or "netra_sessions")
        t = self.table
        self._load = select(t.c.version, t.c.data, t.c.expires_at).where(t.c.key == bindparam("k"))
        self._list = (
            select(t.c.key, t.c.version, t.c.data, t.c.expires_at)
            .where(t.c.key > bindparam("after"), t.c.synced_at.is_(None))
            .order_by(t.c.key)
            .limit(bindparam("limit"))
        )
        self._any = select(true()).select_from(t).where(t.c.synced_at.is_(None)).limit(1)
        self._synced = (
            update(t)
            .where(
                t.c.key == bindparam("k"), t.c.version == bindparam("v"), t.c.synced_at.is_(None)
            )
            .values(synced_at=bindparam("now"))
        )
        self._purge = delete(t).where(t.c.synced_at < bindparam("before"))
        self._upsert = self._build_upsert()

    def _build_upsert(self) -> Any:
        t = self.table
        dialect = self.database.engine.dialect.name
        insert: Any
        if dialect == "postgresql":
            insert = postgresql.insert
        elif dialect == "sqlite":
            insert = sqlite.insert
        else:
            raise ValueError(f"SqlSessionBackend supports postgresql and sqlite, not {dialect!r}")
        stmt = insert(t).values(
            key=bindparam("k"),
            version=bindparam("v"),
            data=bindparam("d"),
            expires_at=bindparam("e"),
        )
        excluded = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={
                "version": excluded.version,
                "data": excluded.data,
                "expires_at": excluded.expires_at,
                "synced_at": null(),  # a newer write is pending again
            },
            where=t.c.version < excluded.version,
        )

    async def create_schema(self) -> None:
        """Create the table if it does not exist (for tests, demos and the embedded default)."""
        async with self.database.engine.begin() as conn:
            await conn.run_sync(self.table.metadata.create_all)

    async def load(self, key: str) -> SessionRecord | None:
        row = await self.database.run(functools.partial(_first, self._load, {"k": key}))
        if row is None:
            return None
        return SessionRecord(key, row.version, row.data, row.expires_at)

    async def save(self, record: SessionRecord, now: float) -> bool:
        params = {"k": record.key, "v": record.version, "d": record.data, "e": record.expires_at}
        return bool(await self.database.run(functools.partial(_rowcount, self._upsert, params)))

    async def ping(self) -> None:
        await self.database.check()

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        params = {"after": after, "limit": limit}
        rows = await self.database.run(functools.partial(_all, self._list, params))
        return [SessionRecord(r.key, r.version, r.data, r.expires_at) for r in rows]

    async def has_pending(self) -> bool:
        return await self.database.run(functools.partial(_first, self._any, {})) is not None

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        params = {"k": key, "v": version, "now": now}
        await self.database.run(functools.partial(_rowcount, self._synced, params))

    async def purge_synced(self, before: float) -> int:
        params = {"before": before}
        return await self.database.run(functools.partial(_rowcount, self._purge, params))

    async def purge_expired(self, now: float) -> int:
        """Delete expired sessions and tombstones; returns how many (embedded housekeeping)."""
        t = self.table
        stmt = delete(t).where(t.c.expires_at <= bindparam("now"))
        return await self.database.run(functools.partial(_rowcount, stmt, {"now": now}))


async def _first(
    stmt: Executable, params: dict[str, Any], conn: AsyncConnection
) -> Row[Any] | None:
    return (await conn.execute(stmt, params)).first()


async def _all(
    stmt: Executable, params: dict[str, Any], conn: AsyncConnection
) -> Sequence[Row[Any]]:
    return (await conn.execute(stmt, params)).all()


async def _rowcount(stmt: Executable, params: dict[str, Any], conn: AsyncConnection) -> int:
    result: Any = await conn.execute(stmt, params)
    return int(result.rowcount)
