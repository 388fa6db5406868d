"""``InMemorySessionBackend``: a process-local backend for tests and single-process use."""

from __future__ import annotations

from collections.abc import Sequence

from netra_resilience.sessions._store import SessionRecord


class InMemorySessionBackend:
    """Implements both backend protocols in a dict. ``available = False`` simulates an outage."""

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}
        self.synced: dict[str, float] = {}
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise ConnectionError("in-memory session backend marked unavailable")

    async def load(self, key: str) -> SessionRecord | None:
        self._check()
        return self.records.get(key)

    async def save(self, record: SessionRecord, now: float) -> bool:
        self._check()
        current = self.records.get(record.key)
        if current is not None and current.version >= record.version:
            return False
        self.records[record.key] = record
        self.synced.pop(record.key, None)
        return True

    async def ping(self) -> None:
        self._check()

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        self._check()
        keys = sorted(k for k in self.records if k > after and k not in self.synced)[:limit]
        return [self.records[k] for k in keys]

    async def has_pending(self) -> bool:
        self._check()
        return len(self.records) > len(self.synced)

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        self._check()
        current = self.records.get(key)
        if current is not None and current.version == version:
            self.synced.setdefault(key, now)

    async def purge_synced(self, before: float) -> int:
        self._check()
        old = [key for key, at in self.synced.items() if at < before]
        for key in old:
            del self.records[key], self.synced[key]
        return len(old)
