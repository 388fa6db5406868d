"""Session / conversation storage with TTL that survives its primary backend failing.

:class:`SessionStore` is framework-free: backends are injected. Redis
(``netra_resilience.integrations.redis_sessions``) and SQLAlchemy
(``netra_resilience.integrations.sessions_sql``: PostgreSQL via asyncpg, SQLite via aiosqlite)
implement the protocols; :class:`InMemorySessionBackend` is for tests.
"""

from __future__ import annotations

from ._gate import BackendGate
from ._memory import InMemorySessionBackend
from ._reconcile import ReconcileReport
from ._record import (
    FallbackSessionBackend,
    SessionBackend,
    SessionRecord,
    SessionStoreUnavailableError,
)
from ._store import SessionStore

__all__ = [
    "BackendGate",
    "FallbackSessionBackend",
    "InMemorySessionBackend",
    "ReconcileReport",
    "SessionBackend",
    "SessionRecord",
    "SessionStore",
    "SessionStoreUnavailableError",
]
