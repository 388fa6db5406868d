"""The aiocache adapter: aiocache's memory backend is an unbounded dict, the adapter bounds it."""

from __future__ import annotations

import pytest
from aiocache import SimpleMemoryCache
from aiocache.base import BaseCache

from netra_resilience import InvalidOptionsError
from netra_resilience.cache import CacheBackend, CacheEntry, CacheOptions
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.pipeline import PipelineBuilder
from netra_resilience.testing import FakeClock
from tests.unit.cache._support import Upstream, by_arguments


def entry(value: object) -> CacheEntry:
    return CacheEntry(value, 0.0, 60.0, 60.0)


async def stored(cache: SimpleMemoryCache) -> int:
    """How many keys aiocache's own dict holds (its ``raw`` command reaches the dict)."""
    count: int = await cache.raw("__len__")
    return count


async def test_memory_cache_is_bounded_by_default_and_evicts_least_recently_used() -> None:
    backend = AiocacheBackend(max_entries=2)
    assert isinstance(backend, CacheBackend)
    assert AiocacheBackend().max_entries == 10_000  # bounded unless told otherwise
    await backend.set("a", entry("A"), 60)
    await backend.set("b", entry("B"), 60)
    assert await backend.get("a") is not None  # "a" is now the most recently used
    await backend.set("c", entry("C"), 60)
    assert await backend.get("b") is None  # the least recently used went
    assert [(await backend.get(k)) is not None for k in "ac"] == [True, True]
    assert await stored(backend.cache) == 2  # evicted from aiocache's dict, not only ours

    await backend.set("a", entry("A2"), 60)  # a rewrite is not one more entry
    await backend.delete("c")
    await backend.set("d", entry("D"), 60)
    assert await stored(backend.cache) == 2
    hit = await backend.get("a")
    assert hit is not None and hit.value == "A2"


async def test_many_callers_keep_the_memory_cache_at_its_bound(clock: FakeClock) -> None:
    backend = AiocacheBackend(max_entries=50)
    upstream = Upstream()
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_cache(CacheOptions(
                backend=backend, key=by_arguments, ttl=3600.0, serve_fresh=True, include_scope=False
            ))
        .build()
    )
    for n in range(500):  # one key per prompt, as per-user answers are
        await pipeline.execute(upstream, f"prompt {n}")
    assert upstream.calls == 500
    assert await stored(backend.cache) == 50


async def test_unbounded_only_by_explicit_opt_in_and_bad_bounds_fail() -> None:
    unbounded = AiocacheBackend(max_entries=None)
    assert unbounded.max_entries is None
    for n in range(20):
        await unbounded.set(str(n), entry(n), 60)
    assert await stored(unbounded.cache) == 20
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidOptionsError, match="max_entries"):
            AiocacheBackend(max_entries=bad)  # type: ignore[arg-type]


async def test_a_cache_that_is_not_in_memory_bounds_itself() -> None:
    server = AiocacheBackend(BaseCache())  # stands for RedisCache / MemcachedCache
    assert server.max_entries is None  # a server (Redis, memcached) evicts by its own policy
