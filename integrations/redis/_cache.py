"""``RedisCacheBackend``: the LLM response cache on your Redis client, in memory while it is down.

    redis = redis.asyncio.Redis.from_url("rediss://app:secret@cache:6380/0")
    backend = RedisCacheBackend(redis, breaker=redis_breaker(redis))
    CacheOptions(backend=backend, ttl=600, stale_ttl=3600, ...)

It runs on the client you give it, so its pool, TLS, ACL user, database and every other
option of that client apply; it opens no connection of its own. Every Redis operation is
bounded by the timeout of the Redis server's shared
:class:`~netra_resilience.circuit_breaker.BackendBreaker`; while that breaker is open (or an
operation fails), reads and writes go to a per-process, bounded
:class:`~netra_resilience.cache.InMemoryTTLCache` and the request is marked
``<breaker name>=fallback_memory``. Nothing waits for Redis to come back: the breaker's
background probe notices, and Redis serves again. A Redis miss also looks in memory, so
answers cached during the outage keep serving until they expire.

An entry is one Redis string, ``{"v": encode(value), "s", "e", "u"}`` as JSON, expiring with
``PX``. The default codec passes JSON-ready values (dicts, lists, strings) through; give
``encode``/``decode`` for others (``model.model_dump`` / ``Model.model_validate``). No
pickling: whoever can write to a shared Redis must not be able to run code in your process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from netra_resilience.cache import CacheEntry, InMemoryTTLCache
from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.redis._client import checked_breaker

__all__ = ["RedisCacheBackend"]

_OWNER = "RedisCacheBackend"
_FIELDS = ("v", "s", "e", "u")
DEFAULT_MEMORY_ENTRIES = 1_000
"""Bound of the default in-memory fallback (per process, used only while Redis is down)."""


def _same(value: Any) -> Any:
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RedisCacheBackend:
    """A :class:`~netra_resilience.cache.CacheBackend`: Redis first, memory as the fallback.

    * ``client``: your ``redis.asyncio.Redis`` (``decode_responses`` either way).
    * ``breaker``: the Redis server's breaker (:func:`redis_breaker`), shared with its users.
    * ``prefix``: prepended to every key (the strategy's keys are already namespaced by
      pipeline name and hashed).
    * ``memory``: the fallback (default: ``InMemoryTTLCache(max_entries=1000)`` on the
      breaker's clock).
    """

    __slots__ = ("_decode", "_encode", "breaker", "client", "memory", "prefix")

    def __init__(
        self,
        client: Redis,
        *,
        breaker: BackendBreaker,
        prefix: str = "netra:cache:",
        encode: Callable[[Any], Any] = _same,
        decode: Callable[[Any], Any] = _same,
        memory: InMemoryTTLCache | None = None,
    ) -> None:
        self.breaker = checked_breaker(_OWNER, breaker)
        for field, fn in (("encode", encode), ("decode", decode)):
            if not callable(fn):
                raise InvalidOptionsError(_OWNER, field, "must be callable")
        given: object = memory  # checked at run time too: an unbounded dict must not slip in
        if given is not None and not isinstance(given, InMemoryTTLCache):
            kind = type(memory).__name__
            raise InvalidOptionsError(_OWNER, "memory", f"must be an InMemoryTTLCache, got {kind}")
        self.client = client
        self.prefix = prefix
        self._encode = encode
        self._decode = decode
        self.memory = memory or InMemoryTTLCache(
            max_entries=DEFAULT_MEMORY_ENTRIES, clock=self.breaker.clock
        )

    # -- Redis, through the breaker ----------------------------------------------------
    async def _get(self, key: str) -> CacheEntry | None:
        raw = await self.client.get(self.prefix + key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if not (isinstance(data, dict) and all(f in data for f in _FIELDS)):
                return None  # a foreign value under our key: a miss, never a crash
            return CacheEntry(
                self._decode(data["v"]), float(data["s"]), float(data["e"]), float(data["u"])
            )
        except (ValueError, TypeError):
            return None

    async def _set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        payload = {
            "v": self._encode(entry.value),
            "s": entry.stored_at,
            "e": entry.expires_at,
            "u": entry.stale_until,
        }
        # Kept a little longer is harmless: the entry's own deadlines decide what is served.
        await self.client.set(self.prefix + key, _dumps(payload), px=max(1, math.ceil(ttl * 1000)))

    async def _delete(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    def _mark(self) -> None:
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.breaker.name, DegradationReason.FALLBACK_MEMORY)

    # -- the CacheBackend protocol -----------------------------------------------------
    async def get(self, key: str) -> CacheEntry | None:
        breaker = self.breaker
        if breaker.allows():
            try:
                entry = await breaker.call(lambda: self._get(key))
            except Exception:
                self._mark()
            else:
                return entry if entry is not None else await self.memory.get(key)
        else:
            self._mark()
        return await self.memory.get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl <= 0:
            await self.delete(key)
            return
        breaker = self.breaker
        if breaker.allows():
            try:
                await breaker.call(lambda: self._set(key, entry, ttl))
                return
            except TypeError:
                raise  # a value the codec cannot encode: the caller's bug, not an outage
            except Exception:
                pass
        self._mark()
        await self.memory.set(key, entry, ttl)

    async def delete(self, key: str) -> None:
        await self.memory.delete(key)
        breaker = self.breaker
        if breaker.allows():
            try:
                await breaker.call(lambda: self._delete(key))
            except Exception:
                self._mark()

    def __repr__(self) -> str:
        return f"RedisCacheBackend(prefix={self.prefix!r}, breaker={self.breaker!r})"
