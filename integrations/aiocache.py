"""A :class:`~netra_resilience.cache.CacheBackend` over any aiocache cache.

    backend = AiocacheBackend()                      # SimpleMemoryCache, at most 10 000 entries
    backend = AiocacheBackend(RedisCache(serializer=JsonSerializer(), ...),
                              encode=encode_answer, decode=decode_answer)  # shared

aiocache expires keys on its own timer (wall time); the entry itself carries its fresh/stale
deadlines, which the cache strategy checks on the injected clock, so a backend that keeps a
key slightly longer never serves it past its time. Errors propagate: the cache strategy turns
any backend error or slow operation into a miss, never into a failed request.

aiocache's memory backend (0.12) is a plain dict with no size bound, and an LLM cache keyed per
user with a day of ``stale_ttl`` would grow with traffic for a day: over a memory cache this
adapter keeps at most ``max_entries`` and evicts the least recently used. The core's
:class:`~netra_resilience.cache.InMemoryTTLCache` does the same without aiocache.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from netra_resilience.integrations import missing_extra

try:
    from aiocache import SimpleMemoryCache
    from aiocache.backends.memory import SimpleMemoryBackend
except ImportError as error:  # the extra is not installed
    raise missing_extra("aiocache", error) from error

from netra_resilience.cache import CacheEntry
from netra_resilience.validation import integer

__all__ = ["AiocacheBackend"]

_FIELDS = ("v", "s", "e", "u")


class AiocacheBackend:
    """Stores :class:`CacheEntry` objects in an aiocache cache.

    * ``cache``: any ``aiocache.BaseCache`` (default: a new ``SimpleMemoryCache``, which keeps
      objects as they are).
    * ``encode``/``decode``: for caches that serialise (Redis with ``JsonSerializer``), the
      entry is stored as a plain dict ``{"v": encode(value), "s", "e", "u"}`` and ``decode``
      rebuilds the value; without them the :class:`CacheEntry` object is stored as is (fine in
      memory; a pickling serializer on a shared Redis would let whoever writes to it run code
      in your process, so prefer a codec).
    * ``namespace``: passed to aiocache on every call (the strategy's keys are already
      namespaced by pipeline name and hashed).
    * ``max_entries``: over an aiocache memory cache (``SimpleMemoryBackend``), the most
      entries this backend keeps there; writing one more evicts the least recently used.
      ``None`` is the explicit opt-in to an unbounded dict. Caches on a server (Redis,
      memcached) are bounded by the server's own eviction policy and ignore it.
    """

    __slots__ = ("_bound", "_cache", "_decode", "_encode", "_namespace", "_options", "_order")

    def __init__(
        self,
        cache: Any = None,
        *,
        encode: Callable[[Any], Any] | None = None,
        decode: Callable[[Any], Any] | None = None,
        namespace: str | None = None,
        max_entries: int | None = 10_000,
    ) -> None:
        if (encode is None) != (decode is None):
            raise ValueError("AiocacheBackend needs both encode and decode, or neither")
        if max_entries is not None:
            integer("AiocacheBackend", "max_entries", max_entries)
        self._cache = cache if cache is not None else SimpleMemoryCache()
        self._encode = encode
        self._decode = decode
        self._namespace = namespace
        self._bound = max_entries or 0
        # Our keys, least recently used first: aiocache's memory backend has no bound of its
        # own, so this one is enforced here (only for it: a server evicts for itself).
        self._order: OrderedDict[str, None] | None = (
            OrderedDict()
            if max_entries is not None and isinstance(self._cache, SimpleMemoryBackend)
            else None
        )
        # aiocache wraps every operation in asyncio.wait_for (a task per call) unless told
        # timeout=0: pointless for its memory backend, which never waits.
        self._options: dict[str, Any] = {"namespace": namespace}
        if isinstance(self._cache, SimpleMemoryBackend):
            self._options["timeout"] = 0

    @property
    def in_process(self) -> bool:
        """True over aiocache's memory backend: it never waits, so the cache strategy puts no
        timeout around its operations (and neither does aiocache: ``timeout=0``)."""
        return isinstance(self._cache, SimpleMemoryBackend)

    @property
    def cache(self) -> Any:
        """The wrapped aiocache cache."""
        return self._cache

    @property
    def max_entries(self) -> int | None:
        """The bound this backend enforces, ``None`` when it enforces none."""
        return self._bound if self._order is not None else None

    async def get(self, key: str) -> CacheEntry | None:
        raw = await self._cache.get(key, **self._options)
        order = self._order
        if order is not None:
            if raw is None:
                order.pop(key, None)  # expired on aiocache's own timer
            elif key in order:
                order.move_to_end(key)
        if raw is None:
            return None
        if isinstance(raw, CacheEntry):
            return raw
        if self._decode is not None and isinstance(raw, dict) and all(f in raw for f in _FIELDS):
            return CacheEntry(
                self._decode(raw["v"]), float(raw["s"]), float(raw["e"]), float(raw["u"])
            )
        return None  # a foreign value under our key: a miss, never a crash

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl <= 0:
            await self.delete(key)
            return
        value: Any = entry
        if self._encode is not None:
            value = {
                "v": self._encode(entry.value),
                "s": entry.stored_at,
                "e": entry.expires_at,
                "u": entry.stale_until,
            }
        # Whole seconds, rounded up: memcached only takes integers, and keeping a key a little
        # longer is harmless (the entry's own deadlines decide what is served).
        await self._cache.set(key, value, ttl=max(1, math.ceil(ttl)), **self._options)
        order = self._order
        if order is None:
            return
        order[key] = None
        order.move_to_end(key)
        while len(order) > self._bound:
            oldest, _ = order.popitem(last=False)
            await self._cache.delete(oldest, **self._options)

    async def delete(self, key: str) -> None:
        if self._order is not None:
            self._order.pop(key, None)
        await self._cache.delete(key, **self._options)

    async def close(self) -> None:
        """Close the wrapped cache's connections (a no-op for the memory cache)."""
        await self._cache.close()
