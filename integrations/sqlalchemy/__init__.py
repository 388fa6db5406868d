"""SQLAlchemy 2 async: a bulkhead in front of the connection pool, and error predicates.

Why a bulkhead when the pool already queues? SQLAlchemy's pool queue is unbounded and its
``pool_timeout`` (30 s by default) ends in a ``sqlalchemy.exc.TimeoutError`` raised from deep
inside the call. :class:`PoolBulkhead` admits at most ``pool_size + max_overflow`` callers to the
pool, queues the next callers in FIFO order for at most ``queue_timeout`` seconds (the queue is
bounded by that deadline; ``max_queue``, 10,000 by default, only bounds memory), and rejects the
rest at once with :class:`~netra_resilience.BulkheadRejectedError` (marking
``<name>=bulkhead_full``): before any connection is taken, so a rejection never leaves a
half-written transaction. A transaction opened with :meth:`PoolBulkhead.begin` commits only when
its block completes; an exception or a cancellation rolls it back.

Recommended pool settings (see :func:`create_pooled_engine`): ``pool_size`` = the concurrency
you want per process (PostgreSQL's ``max_connections`` / replicas, minus headroom),
``max_overflow=0`` (a fixed pool: overflow connections are opened exactly when the database is
busiest), ``pool_timeout`` a little above ``queue_timeout`` (a backstop: the bulkhead already
guarantees a free connection), ``pool_pre_ping=True`` (a connection that died with a database
restart is replaced instead of failing one request), ``pool_recycle`` below any server or
proxy idle timeout.
"""

from __future__ import annotations

from netra_resilience.integrations import missing_extra

try:
    import sqlalchemy  # noqa: F401
except ImportError as error:  # the extra is not installed
    raise missing_extra("sqlalchemy", error) from error

from netra_resilience.integrations.sqlalchemy._engine import PoolBulkhead, create_pooled_engine
from netra_resilience.integrations.sqlalchemy._errors import sqlalchemy_should_handle
from netra_resilience.integrations.sqlalchemy._runs import SqlRunLedger, run_ledger_table
from netra_resilience.integrations.sqlalchemy._sessions import (
    SqlSessionBackend,
    session_entries_table,
    session_table,
)

__all__ = [
    "PoolBulkhead",
    "SqlRunLedger",
    "SqlSessionBackend",
    "create_pooled_engine",
    "run_ledger_table",
    "session_entries_table",
    "session_table",
    "sqlalchemy_should_handle",
]
