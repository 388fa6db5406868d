"""``SqlSessionBackend``: sessions in a SQL table (and session logs in a second one) via
SQLAlchemy 2 async.

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
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    bindparam,
    delete,
    null,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import Executable

from netra_resilience.integrations.sqlalchemy._engine import PoolBulkhead
from netra_resilience.integrations.sqlalchemy._errors import sqlalchemy_should_handle
from netra_resilience.predicates import OutcomePredicate
from netra_resilience.sessions import SessionEntry, SessionRecord

__all__ = ["SqlSessionBackend", "session_entries_table", "session_table"]


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


def session_entries_table(sessions: Table) -> Table:
    """The log table beside ``sessions`` (same metadata, named ``<sessions>_entries``):
    ``key`` and ``id`` (the primary key: an entry is stored once, whoever writes it again),
    ``data``, ``expires_at`` and ``synced_at`` as in the sessions table."""
    name = f"{sessions.name}_entries"
    existing = sessions.metadata.tables.get(
        f"{sessions.schema}.{name}" if sessions.schema else name
    )
    if existing is not None:
        return existing
    return Table(
        name,
        sessions.metadata,
        Column("key", String(255), nullable=False),
        Column("id", String(40), nullable=False),
        Column("data", LargeBinary, nullable=False),
        Column("expires_at", Double, nullable=False),
        Column("synced_at", Double, nullable=True),
        PrimaryKeyConstraint("key", "id"),
        schema=sessions.schema,
    )


class SqlSessionBackend:
    """Session backend on PostgreSQL or SQLite; implements the fallback protocol too.

    ``queue_timeout`` (the :class:`PoolBulkhead`'s) tells a :class:`SessionStore` how long a
    call may wait for a connection, so its breaker's timeout covers that wait: a burst turned
    away by the bulkhead is local load shedding, never counted as the database failing.
    """

    unavailable: OutcomePredicate = sqlalchemy_should_handle
    """Which errors mean the database is down (what a session store's own breaker counts):
    not a statement's bad data, not a full :class:`PoolBulkhead`."""

    def __init__(self, database: AsyncEngine | PoolBulkhead, *, table: str | Table = "") -> None:
        self.database = database if isinstance(database, PoolBulkhead) else PoolBulkhead(database)
        self.table = table if isinstance(table, Table) else session_table(table or "netra_sessions")
        self.entries_table = session_entries_table(self.table)
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
        e = self.entries_table
        self._insert_entry = (
            self._insert(e)
            .values(
                key=bindparam("k"),
                id=bindparam("i"),
                data=bindparam("d"),
                expires_at=bindparam("e"),
            )
            .on_conflict_do_nothing(index_elements=[e.c.key, e.c.id])
        )
        newest = (
            select(e.c.id)
            .where(e.c.key == bindparam("k"))
            .order_by(e.c.id.desc())
            .limit(1)
            .offset(bindparam("keep"))
            .scalar_subquery()
        )
        self._trim = delete(e).where(e.c.key == bindparam("k"), e.c.id <= newest)
        self._entries = (
            select(e.c.id, e.c.data, e.c.expires_at)
            .where(e.c.key == bindparam("k"))
            .order_by(e.c.id.desc())
            .limit(bindparam("limit"))
        )
        self._pending_entries = (
            select(e.c.key, e.c.id, e.c.data, e.c.expires_at)
            .where(
                tuple_(e.c.key, e.c.id) > tuple_(bindparam("ak"), bindparam("ai")),
                e.c.synced_at.is_(None),
            )
            .order_by(e.c.key, e.c.id)
            .limit(bindparam("limit"))
        )
        self._any_entry = select(true()).select_from(e).where(e.c.synced_at.is_(None)).limit(1)
        self._entry_synced = (
            update(e)
            .where(e.c.key == bindparam("k"), e.c.id == bindparam("i"), e.c.synced_at.is_(None))
            .values(synced_at=bindparam("now"))
        )
        self._purge_entries = delete(e).where(e.c.synced_at < bindparam("before"))

    @property
    def queue_timeout(self) -> float | None:
        """How long a call may queue for a connection (the bulkhead's deadline)."""
        return self.database.limiter.queue_timeout

    def _insert(self, table: Table) -> Any:
        dialect = self.database.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        raise ValueError(f"SqlSessionBackend supports postgresql and sqlite, not {dialect!r}")

    def _build_upsert(self) -> Any:
        t = self.table
        stmt = self._insert(t).values(
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
        """Create the tables if they do not exist (tests, demos and the embedded default)."""
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

    async def append(self, entry: SessionEntry, now: float, keep: int) -> None:
        params = {"k": entry.key, "i": entry.id, "d": entry.data, "e": entry.expires_at}
        trim = {"k": entry.key, "keep": keep}
        await self.database.run(
            functools.partial(_append, self._insert_entry, params, self._trim, trim)
        )

    async def entries(self, key: str, limit: int) -> Sequence[SessionEntry]:
        params = {"k": key, "limit": limit}
        rows = await self.database.run(functools.partial(_all, self._entries, params))
        return [SessionEntry(key, r.id, r.data, r.expires_at) for r in reversed(rows)]

    async def ping(self) -> None:
        await self.database.check()

    async def pending_entries(
        self, *, after: tuple[str, str], limit: int
    ) -> Sequence[SessionEntry]:
        params = {"ak": after[0], "ai": after[1], "limit": limit}
        rows = await self.database.run(functools.partial(_all, self._pending_entries, params))
        return [SessionEntry(r.key, r.id, r.data, r.expires_at) for r in rows]

    async def mark_entries_synced(self, entries: Sequence[SessionEntry], now: float) -> None:
        params = [{"k": e.key, "i": e.id, "now": now} for e in entries]
        if params:
            await self.database.run(functools.partial(_execute_many, self._entry_synced, params))

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        params = {"after": after, "limit": limit}
        rows = await self.database.run(functools.partial(_all, self._list, params))
        return [SessionRecord(r.key, r.version, r.data, r.expires_at) for r in rows]

    async def has_pending(self) -> bool:
        return await self.database.run(functools.partial(_any_of, (self._any, self._any_entry)))

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        params = {"k": key, "v": version, "now": now}
        await self.database.run(functools.partial(_rowcount, self._synced, params))

    async def purge_synced(self, before: float) -> int:
        params = {"before": before}
        statements = (self._purge, self._purge_entries)
        return await self.database.run(functools.partial(_rowcounts, statements, params))

    async def purge_expired(self, now: float) -> int:
        """Delete expired sessions, tombstones and log entries; returns how many (embedded
        housekeeping)."""
        statements = tuple(
            delete(t).where(t.c.expires_at <= bindparam("now"))
            for t in (self.table, self.entries_table)
        )
        return await self.database.run(functools.partial(_rowcounts, statements, {"now": now}))


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


async def _rowcounts(
    statements: Sequence[Executable], params: dict[str, Any], conn: AsyncConnection
) -> int:
    return sum([await _rowcount(stmt, params, conn) for stmt in statements])


async def _execute_many(
    stmt: Executable, params: list[dict[str, Any]], conn: AsyncConnection
) -> None:
    await conn.execute(stmt, params)


async def _any_of(statements: Sequence[Executable], conn: AsyncConnection) -> bool:
    for stmt in statements:
        if (await conn.execute(stmt)).first() is not None:
            return True
    return False


async def _append(
    insert: Executable,
    params: dict[str, Any],
    trim: Executable,
    trim_params: dict[str, Any],
    conn: AsyncConnection,
) -> None:
    # Two statements on one autocommit connection: the insert is atomic alone, and a trim
    # that a crash skipped is redone by the next append.
    await conn.execute(insert, params)
    await conn.execute(trim, trim_params)
