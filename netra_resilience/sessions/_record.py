"""What a session backend stores, and the two backend protocols the store is built from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from netra_resilience.exceptions import NetraError


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored version of a session.

    ``version`` orders writes (microseconds of wall time, strictly increasing per store), so a
    backend keeps a record only when it is newer than the one it holds: that is what stops a
    replayed outage write from overwriting a later one. ``data is None`` is a *tombstone*: the
    session was deleted at ``version``, and older writes must not bring it back.
    ``expires_at`` is wall time in seconds since the epoch (``None`` = never).
    """

    key: str
    version: int
    data: bytes | None
    expires_at: float | None = None

    @property
    def deleted(self) -> bool:
        return self.data is None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def ttl(self, now: float) -> float | None:
        """Seconds left (``None`` = no expiry); zero or less means already expired."""
        return None if self.expires_at is None else self.expires_at - now


@runtime_checkable
class SessionBackend(Protocol):
    """Where sessions live: Redis, a SQL table, memory. Versioned, compare-and-set writes."""

    async def load(self, key: str) -> SessionRecord | None:
        """The stored record (tombstones included), or ``None`` if the key is unknown."""
        ...

    async def save(self, record: SessionRecord, now: float) -> bool:
        """Store ``record`` unless a record with the same or a newer version is there.

        ``now`` is the store's wall time (seconds since the epoch), for backends that expire
        keys relative to it (Redis ``PX``). Returns whether the record was stored. Must be
        atomic (one Lua script, one upsert statement).
        """
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests right now (used by health checks)."""
        ...


@runtime_checkable
class FallbackSessionBackend(SessionBackend, Protocol):
    """A backend that can stand in for the primary and lists what it holds for write-back.

    Records written here wait as *pending* until the store has copied them to the primary;
    then they are marked *synced* and stay readable for a grace period, for processes that
    still read from the fallback because they have not yet noticed the primary is back.
    A newer write to a synced record makes it pending again.
    """

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        """Up to ``limit`` pending records with ``key > after``, ordered by key."""
        ...

    async def has_pending(self) -> bool:
        """Whether any record is waiting to be written back."""
        ...

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        """Mark ``key`` written back at ``now`` if it still holds ``version``."""
        ...

    async def purge_synced(self, before: float) -> int:
        """Delete records synced before ``before``; returns how many."""
        ...


class SessionStoreUnavailableError(NetraError):
    """Neither the primary nor the fallback backend could serve the operation."""

    def __init__(self, message: str = "session store unavailable", *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation
