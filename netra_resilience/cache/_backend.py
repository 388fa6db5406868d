"""Cache entries, the backend protocol, and a bounded in-memory LRU+TTL backend."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from netra_resilience._validation import integer
from netra_resilience.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached value and its lifetimes, as wall-clock epoch seconds.

    Wall-clock (``clock.now().timestamp()``) rather than monotonic time, so an entry written by
    one process is meaningful to another reading the same shared backend.

    * fresh while ``now < expires_at`` (may be served instead of calling);
    * usable stale while ``now < stale_until`` (served only when the call fails).
    """

    value: Any
    stored_at: float
    expires_at: float
    stale_until: float

    def is_fresh(self, now: float) -> bool:
        return now < self.expires_at

    def is_usable(self, now: float) -> bool:
        return now < self.stale_until


@runtime_checkable
class CacheBackend(Protocol):
    """Where entries live. Implementations may raise anything: the strategy treats it as a miss.

    ``set``'s ``ttl`` is how long to keep the entry at all (until ``entry.stale_until``);
    a backend may drop entries earlier (eviction) but should not serve them later. Values are
    stored as given; serialising them is the backend's business.
    """

    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...


class InMemoryTTLCache:
    """A per-process backend: LRU-bounded to ``max_entries``, expiring on the injected clock.

    Expiry uses the clock's monotonic time (immune to wall-clock jumps). Objects are kept as
    they are, not copied: do not mutate a value after caching it.
    """

    __slots__ = ("_clock", "_data", "max_entries")

    def __init__(self, *, max_entries: int = 10_000, clock: Clock | None = None) -> None:
        self.max_entries = integer("InMemoryTTLCache", "max_entries", max_entries, minimum=1)
        self._clock = clock or SYSTEM_CLOCK
        self._data: OrderedDict[str, tuple[float, CacheEntry]] = OrderedDict()

    async def get(self, key: str) -> CacheEntry | None:
        item = self._data.get(key)
        if item is None:
            return None
        deadline, entry = item
        if self._clock.monotonic() >= deadline:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        data = self._data
        if ttl <= 0:
            data.pop(key, None)
            return
        data[key] = (self._clock.monotonic() + ttl, entry)
        data.move_to_end(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
