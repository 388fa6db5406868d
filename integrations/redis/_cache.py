"""``RedisCacheBackend``: the LLM response cache on Redis (aiocache), in memory while it is down.

    backend = RedisCacheBackend.from_url("redis://cache:6379/0", namespace="llm")
    CacheOptions(backend=backend, ttl=600, stale_ttl=3600, ...)

Every Redis operation is bounded by ``timeout`` behind the backend's own
:class:`~netra_resilience.sessions.BackendGate`; while Redis is unreachable, reads and writes
go to a per-process :class:`~netra_resilience.cache.InMemoryTTLCache` and the request is
marked ``redis=fallback_memory``. Nothing waits for Redis to come back: a background probe
notices, and Redis serves again. A Redis miss also looks in memory, so answers cached during
the outage keep serving until they expire.

Values cross Redis as JSON: the default codec passes JSON-ready values (dicts, lists, strings)
through; give ``encode``/``decode`` for others (``model.model_dump`` / ``Model.model_validate``).
No pickling: whoever can write to a shared Redis must not be able to run code in your process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiocache import RedisCache
from aiocache.serializers import JsonSerializer
from redis.asyncio import BlockingConnectionPool
from redis.backoff import NoBackoff
from redis.retry import Retry

from netra_resilience.cache import CacheBackend, CacheEntry, InMemoryTTLCache
from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.sessions import BackendGate
from netra_resilience.validation import Seconds

__all__ = ["RedisCacheBackend", "aiocache_redis"]


def _same(value: Any) -> Any:
    return value


def aiocache_redis(url: str, *, max_connections: int = 64, socket_timeout: float = 1.0) -> Any:
    """An aiocache ``RedisCache`` for ``url`` with redis-py's inner retries off, a blocking
    pool, and no aiocache timeout (the backend's own, shorter one applies)."""
    parts = urlsplit(url)
    db = parts.path.strip("/") or "0"
    return RedisCache(
        serializer=JsonSerializer(),
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(db),
        password=parts.password,
        timeout=None,
        pool_max_size=max_connections,
        connection_pool_class=BlockingConnectionPool,
        connection_pool_kwargs={
            "retry": Retry(NoBackoff(), 0),
            "retry_on_error": [],
            "socket_timeout": socket_timeout,
            "timeout": None,
        },
    )


class RedisCacheBackend:
    """A :class:`~netra_resilience.cache.CacheBackend`: Redis first, memory as the fallback."""

    def __init__(
        self,
        cache: Any,
        *,
        encode: Callable[[Any], Any] = _same,
        decode: Callable[[Any], Any] = _same,
        namespace: str | None = None,
        memory: CacheBackend | None = None,
        clock: Clock | None = None,
        timeout: Seconds = 0.1,
        retry_interval: Seconds = 1.0,
        dependency: str = "redis",
    ) -> None:
        self.remote = AiocacheBackend(cache, encode=encode, decode=decode, namespace=namespace)
        self.memory: CacheBackend = memory or InMemoryTTLCache(clock=clock)
        self.dependency = dependency
        self.gate = BackendGate(
            self._ping, name=dependency, clock=clock, timeout=timeout, retry_interval=retry_interval
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisCacheBackend:
        return cls(aiocache_redis(url), **kwargs)

    async def _ping(self) -> None:
        await self.remote.cache.client.ping()

    def _mark(self) -> None:
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, DegradationReason.FALLBACK_MEMORY)

    async def get(self, key: str) -> CacheEntry | None:
        if self.gate.allows():
            try:
                entry = await self.gate.call(functools.partial(self.remote.get, key))
            except Exception:
                self._mark()
            else:
                return entry if entry is not None else await self.memory.get(key)
        else:
            self._mark()
        return await self.memory.get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if self.gate.allows():
            try:
                await self.gate.call(functools.partial(self.remote.set, key, entry, ttl))
                return
            except Exception:
                pass
        self._mark()
        await self.memory.set(key, entry, ttl)

    async def delete(self, key: str) -> None:
        await self.memory.delete(key)
        if self.gate.allows():
            try:
                await self.gate.call(functools.partial(self.remote.delete, key))
            except Exception:
                self._mark()

    async def close(self) -> None:
        """Stop the probe and close the Redis connections."""
        await self.gate.aclose()
        await self.remote.cache.client.aclose()  # aiocache's close() uses a deprecated call
