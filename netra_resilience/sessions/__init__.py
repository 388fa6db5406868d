"""Session / conversation storage with TTL that survives its primary backend failing.

:class:`SessionStore` is framework-free: backends are injected. Redis
(``netra_resilience.integrations.redis``) and SQLAlchemy
(``netra_resilience.integrations.sqlalchemy``: PostgreSQL via asyncpg, SQLite via aiosqlite)
implement the protocols; :class:`InMemorySessionBackend` is for tests. Each backend sits behind
a :class:`~netra_resilience.circuit_breaker.BackendBreaker`, ideally the one every user of
that Redis or database shares.
"""

from __future__ import annotations

from netra_resilience.sessions._memory import InMemorySessionBackend
from netra_resilience.sessions._store import (
    FallbackSessionBackend,
    ReconcileReport,
    SessionBackend,
    SessionRecord,
    SessionStore,
    SessionStoreUnavailableError,
)

__all__ = [
    "FallbackSessionBackend",
    "InMemorySessionBackend",
    "ReconcileReport",
    "SessionBackend",
    "SessionRecord",
    "SessionStore",
    "SessionStoreUnavailableError",
]
