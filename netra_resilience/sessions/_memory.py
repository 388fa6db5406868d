"""``InMemorySessionBackend``: a process-local backend for tests and single-process use."""

from __future__ import annotations

from collections.abc import Sequence

from netra_resilience.sessions._store import SessionEntry, SessionRecord


class InMemorySessionBackend:
    """Implements both backend protocols in dicts. ``available = False`` simulates an outage."""

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}
        self.synced: dict[str, float] = {}
        self.logs: dict[str, dict[str, SessionEntry]] = {}
        self.synced_entries: dict[tuple[str, str], float] = {}
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

    async def append(self, entry: SessionEntry, now: float, keep: int) -> None:
        self._check()
        log = self.logs.setdefault(entry.key, {})
        log.setdefault(entry.id, entry)
        for old in sorted(log)[:-keep]:
            del log[old]
            self.synced_entries.pop((entry.key, old), None)

    async def entries(self, key: str, limit: int) -> Sequence[SessionEntry]:
        self._check()
        log = self.logs.get(key, {})
        return [log[i] for i in sorted(log)[-limit:]]

    async def ping(self) -> None:
        self._check()

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        self._check()
        keys = sorted(k for k in self.records if k > after and k not in self.synced)[:limit]
        return [self.records[k] for k in keys]

    async def pending_entries(
        self, *, after: tuple[str, str], limit: int
    ) -> Sequence[SessionEntry]:
        self._check()
        ids = sorted(
            (key, i)
            for key, log in self.logs.items()
            for i in log
            if (key, i) > after and (key, i) not in self.synced_entries
        )[:limit]
        return [self.logs[key][i] for key, i in ids]

    async def has_pending(self) -> bool:
        self._check()
        entries = sum(len(log) for log in self.logs.values())
        return len(self.records) > len(self.synced) or entries > len(self.synced_entries)

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        self._check()
        current = self.records.get(key)
        if current is not None and current.version == version:
            self.synced.setdefault(key, now)

    async def mark_entries_synced(self, entries: Sequence[SessionEntry], now: float) -> None:
        self._check()
        for entry in entries:
            if entry.id in self.logs.get(entry.key, {}):
                self.synced_entries.setdefault((entry.key, entry.id), now)

    async def purge_synced(self, before: float) -> int:
        self._check()
        old = [key for key, at in self.synced.items() if at < before]
        for key in old:
            del self.records[key], self.synced[key]
        old_entries = [pair for pair, at in self.synced_entries.items() if at < before]
        for key, i in old_entries:
            del self.logs[key][i], self.synced_entries[key, i]
            if not self.logs[key]:
                del self.logs[key]
        return len(old) + len(old_entries)
