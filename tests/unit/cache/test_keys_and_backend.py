"""``stable_key`` canonical hashing and the in-memory LRU+TTL backend."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from netra_resilience import InvalidOptionsError
from netra_resilience.cache import CacheBackend, CacheEntry, InMemoryTTLCache, stable_key
from netra_resilience.testing import FakeClock


def entry(value: object, now: float = 0.0, ttl: float = 10.0) -> CacheEntry:
    return CacheEntry(value, now, now + ttl, now + ttl)


def test_stable_key_ignores_dict_ordering_and_is_sha256_hex() -> None:
    a = stable_key("gpt-4o", {"temperature": 0.2, "messages": [{"role": "user", "content": "hi"}]})
    b = stable_key("gpt-4o", {"messages": [{"content": "hi", "role": "user"}], "temperature": 0.2})
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0


def test_stable_key_changes_with_any_field() -> None:
    base = {"model": "gpt-4o", "temperature": 0.2, "tools": ["search"]}
    keys = {
        stable_key(base),
        stable_key({**base, "temperature": 0.3}),
        stable_key({**base, "tools": []}),
        stable_key({**base, "model": "gpt-4o-mini"}),
        stable_key({**base, "max_tokens": 10}),
    }
    assert len(keys) == 5


def test_stable_key_handles_sets_bytes_dataclasses_and_pydantic_models() -> None:
    @dataclass
    class Params:
        top_p: float

    class Message(BaseModel):
        role: str
        content: str

    assert stable_key({"b", "a", "c"}) == stable_key({"c", "a", "b"})
    assert stable_key(b"\x00\x01") != stable_key(b"\x00\x02")
    assert stable_key(Params(0.9)) == stable_key({"top_p": 0.9})
    assert stable_key(Message(role="user", content="hi")) == stable_key(
        {"content": "hi", "role": "user"}
    )


def test_in_memory_cache_implements_the_protocol() -> None:
    assert isinstance(InMemoryTTLCache(), CacheBackend)


async def test_in_memory_cache_get_set_delete() -> None:
    cache = InMemoryTTLCache(clock=FakeClock())
    assert await cache.get("k") is None
    e = entry("v")
    await cache.set("k", e, 10.0)
    assert await cache.get("k") is e
    await cache.delete("k")
    assert await cache.get("k") is None and len(cache) == 0
    await cache.delete("missing")  # deleting a missing key is fine


async def test_in_memory_cache_expires_on_the_injected_clock(clock: FakeClock) -> None:
    cache = InMemoryTTLCache(clock=clock)
    await cache.set("k", entry("v"), 10.0)
    await clock.advance(9.9)
    assert await cache.get("k") is not None
    await clock.advance(0.1)
    assert await cache.get("k") is None
    assert "k" not in cache


async def test_in_memory_cache_non_positive_ttl_removes_the_entry(clock: FakeClock) -> None:
    cache = InMemoryTTLCache(clock=clock)
    await cache.set("k", entry("v"), 10.0)
    await cache.set("k", entry("w"), 0.0)
    assert await cache.get("k") is None


async def test_in_memory_cache_is_lru_bounded(clock: FakeClock) -> None:
    cache = InMemoryTTLCache(max_entries=2, clock=clock)
    await cache.set("a", entry(1), 60)
    await cache.set("b", entry(2), 60)
    assert await cache.get("a") is not None  # "a" is now the most recently used
    await cache.set("c", entry(3), 60)
    assert len(cache) == 2
    assert await cache.get("b") is None
    assert await cache.get("a") is not None and await cache.get("c") is not None
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_in_memory_cache_rejects_bad_max_entries(bad: object) -> None:
    with pytest.raises(InvalidOptionsError, match=r"InMemoryTTLCache\.max_entries"):
        InMemoryTTLCache(max_entries=bad)  # type: ignore[arg-type]


def test_cache_entry_freshness_and_usability() -> None:
    e = CacheEntry("v", stored_at=100.0, expires_at=110.0, stale_until=150.0)
    assert e.is_fresh(109.9) and not e.is_fresh(110.0)
    assert e.is_usable(149.9) and not e.is_usable(150.0)
