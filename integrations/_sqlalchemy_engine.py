"""Engine construction and connection helpers behind :class:`PoolBulkhead`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["create_pooled_engine", "discard_connection", "pool_capacity", "select_one"]


def create_pooled_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 0,
    pool_timeout: float = 10.0,
    pool_recycle: float = 1800.0,
    pool_pre_ping: bool = True,
    **kwargs: Any,
) -> AsyncEngine:
    """``create_async_engine`` with the pool settings documented in ``integrations.sqlalchemy``.

    For ``sqlite+aiosqlite`` URLs (the embedded default) the pool arguments do not apply;
    instead each connection gets WAL journaling, ``synchronous=NORMAL`` and a busy timeout.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)  # SQLite: no server, no pool sizing
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=pool_recycle,
        pool_pre_ping=pool_pre_ping,
        **kwargs,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; ``synchronous=NORMAL`` is durable in WAL mode
    against application crashes (a power loss may drop the last commits); ``busy_timeout``
    makes a second process wait for the write lock instead of failing at once."""
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def pool_capacity(engine: AsyncEngine) -> int:
    pool: Any = engine.sync_engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    if callable(size):
        return max(int(size()) + max(int(overflow), 0), 1)
    return 5  # pools without a size (SQLite's): a modest default


async def select_one(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT 1"))


async def discard_connection(conn: AsyncConnection) -> None:
    """Close a connection whose state is unknown; it goes back to the pool or is dropped."""
    try:
        await conn.invalidate()
        await conn.close()
    except Exception:  # already broken: nothing more to release
        return
