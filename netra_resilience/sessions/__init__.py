"""Session / conversation storage with TTL that survives its primary backend failing.

:class:`SessionStore` is framework-free: backends are injected. Redis
(``netra_resilience.integrations.redis``) and SQLAlchemy
(``netra_resilience.integrations.sqlalchemy``: PostgreSQL via asyncpg, SQLite via aiosqlite)
implement the protocols; :class:`InMemorySessionBackend` is for tests. Each backend sits behind
a :class:`~netra_resilience.circuit_breaker.BackendBreaker`, ideally the one every user of
that Redis or database shares. Conversations are logs (``append``/``entries``): no write
replaces turns it did not see, so an outage loses none.
"""

from __future__ import annotations

from netra_resilience.sessions._memory import InMemorySessionBackend
from netra_resilience.sessions._store import (
    MAX_KEY_LENGTH,
    FallbackSessionBackend,
    InvalidSessionKeyError,
    ReconcileReport,
    SessionBackend,
    SessionEntry,
    SessionRecord,
    SessionStore,
    SessionStoreUnavailableError,
    check_key,
)

__all__ = [
    "MAX_KEY_LENGTH",
    "FallbackSessionBackend",
    "InMemorySessionBackend",
    "InvalidSessionKeyError",
    "ReconcileReport",
    "SessionBackend",
    "SessionEntry",
    "SessionRecord",
    "SessionStore",
    "SessionStoreUnavailableError",
    "check_key",
]
