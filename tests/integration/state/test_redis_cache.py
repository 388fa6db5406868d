"""The LLM response cache on the user's redis-py client, falling back to memory while the
Redis server's breaker is open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from netra_resilience import InvalidOptionsError, Pipeline, PipelineBuilder
from netra_resilience.cache import CacheEntry, CacheOptions, InMemoryTTLCache
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import RedisCacheBackend, redis_breaker, redis_client
from tests.servers import RedisServer


def cached(backend: RedisCacheBackend) -> Pipeline:
    options = CacheOptions(
        backend=backend,
        key=lambda ctx, args, kwargs: str(args[0]),
        ttl=600,
        stale_ttl=3600,
        include_scope=False,  # answers shared by every caller (explicit opt-in)
        backend_timeout=1.0,  # the breaker's own 0.1 s timeout is the one that acts
    )
    return PipelineBuilder("llm").add_cache(options).build()


class Model:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str) -> dict[str, Any]:
        self.calls += 1
        return {"answer": prompt.upper()}


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    redis = redis_client(redis_server.url)
    yield redis
    await redis.aclose()


def backend_on(redis: Redis, namespace: str, **breaker: Any) -> RedisCacheBackend:
    return RedisCacheBackend(redis, breaker=redis_breaker(redis, **breaker), prefix=namespace)


async def test_replicas_share_answers_through_redis(
    redis_server: RedisServer, namespace: str
) -> None:
    clients = [redis_client(redis_server.url) for _ in range(2)]
    a, b = (backend_on(c, namespace) for c in clients)
    model = Model()
    try:
        assert await cached(a).execute(model, "hi") == {"answer": "HI"}
        ctx = ResilienceContext("chat")
        assert await cached(b).execute(model, "hi", context=ctx) == {"answer": "HI"}
        assert model.calls == 1  # b was answered from Redis
        assert not ctx.degradation
    finally:
        for c in clients:
            await c.aclose()


async def test_the_cache_runs_on_the_users_client_with_all_its_options(
    redis_server: RedisServer, namespace: str
) -> None:
    """ACL user, database number, decode_responses and client name all come from the user's
    URL (the old URL parser dropped them, and opened a second pool)."""
    admin = redis_client(redis_server.url)
    user = f"{namespace}-cache"
    await admin.acl_setuser(
        user,
        enabled=True,
        passwords=["+s3cret-cache"],
        keys=[f"{namespace}*"],
        categories=["+@all"],
    )
    url = (
        f"redis://{user}:s3cret-cache@127.0.0.1:{redis_server.port}/5"
        f"?decode_responses=True&client_name={namespace}"
    )
    redis: Redis = Redis.from_url(url)
    try:
        backend = RedisCacheBackend(redis, breaker=redis_breaker(redis), prefix=f"{namespace}:")
        assert backend.client is redis  # no second client, no second pool
        model = Model()
        pipeline = cached(backend)
        assert await pipeline.execute(model, "hi") == {"answer": "HI"}
        ctx = ResilienceContext("chat")
        assert await pipeline.execute(model, "hi", context=ctx) == {"answer": "HI"}
        assert model.calls == 1 and not ctx.degradation  # a hit, decoded from str responses

        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*")]
        assert len(keys) == 1  # in database 5, as the user's URL says
        assert await admin.exists(keys[0]) == 0  # not in database 0
        raw = await redis.get(keys[0])
        assert isinstance(raw, str)  # decode_responses=True: the client's option holds
        stored = json.loads(raw)
        assert stored["v"] == {"answer": "HI"} and set(stored) == {"v", "s", "e", "u"}
        assert 4_100_000 < await redis.pttl(keys[0]) <= 4_200_000  # ttl + stale_ttl, in ms

        mine = [c for c in await admin.client_list() if c.get("name") == namespace]
        assert mine and all(c["user"] == user and c["db"] == "5" for c in mine)
    finally:
        await redis.aclose()
        await admin.acl_deluser(user)
        await admin.aclose()


async def test_a_foreign_or_broken_value_under_the_key_is_a_miss(
    client: Redis, namespace: str
) -> None:
    backend = backend_on(client, f"{namespace}:")
    await client.set(f"{namespace}:a", "not json")
    await client.set(f"{namespace}:b", json.dumps({"v": 1}))
    assert await backend.get("a") is None and await backend.get("b") is None
    entry = CacheEntry({"x": 1}, 1.0, 2.0, 3.0)
    await backend.set("c", entry, 10)
    assert await backend.get("c") == entry
    await backend.set("c", entry, 0)  # nothing left to keep: deleted
    assert await client.exists(f"{namespace}:c") == 0
    await backend.set("d", entry, 10)
    await backend.delete("d")
    assert await backend.get("d") is None


async def test_options_are_checked(client: Redis) -> None:
    breaker = redis_breaker(client)
    with pytest.raises(InvalidOptionsError, match=r"RedisCacheBackend\.breaker"):
        RedisCacheBackend(client, breaker=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"RedisCacheBackend\.memory"):
        RedisCacheBackend(client, breaker=breaker, memory={})  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"RedisCacheBackend\.decode"):
        RedisCacheBackend(client, breaker=breaker, encode=str, decode=1)  # type: ignore[arg-type]
    default = RedisCacheBackend(client, breaker=breaker)
    assert isinstance(default.memory, InMemoryTTLCache) and default.memory.max_entries == 1000


async def test_redis_sigkill_mid_load_memory_fallback_flagged_then_redis_again(
    fault_redis: RedisServer, namespace: str
) -> None:
    redis = redis_client(fault_redis.url)
    backend = backend_on(redis, namespace)
    pipeline = cached(backend)
    model = Model()
    flags: list[str | None] = []

    async def user(i: int) -> None:
        for n in range(30):
            ctx = ResilienceContext("chat")
            prompt = f"q{(i + n) % 10}"
            assert await pipeline.execute(model, prompt, context=ctx) == {"answer": prompt.upper()}
            flags.append(ctx.degradation.reason("redis"))
            if i == 0 and n == 10:
                fault_redis.kill()

    try:
        await asyncio.gather(*(user(i) for i in range(6)))  # no call failed
        assert "fallback_memory" in flags and None in flags
        assert not backend.breaker.available
        # During the outage the answers recomputed once are served from memory.
        before = model.calls
        assert await pipeline.execute(model, "q3") == {"answer": "Q3"}
        assert model.calls == before

        fault_redis.start()
        assert await backend.breaker.probe_now()
        ctx = ResilienceContext("chat")
        assert await pipeline.execute(model, "new", context=ctx) == {"answer": "NEW"}
        assert not ctx.degradation  # Redis serves again
    finally:
        await backend.breaker.aclose()
        await redis.aclose()


async def test_redis_sigstop_bounded_then_sigcont(fault_redis: RedisServer, namespace: str) -> None:
    redis = redis_client(fault_redis.url)
    backend = backend_on(redis, namespace, timeout=0.05)
    pipeline = cached(backend)
    model = Model()
    try:
        await pipeline.execute(model, "warm")
        fault_redis.pause()
        ctx = ResilienceContext("chat")
        results = await asyncio.gather(
            *(pipeline.execute(model, f"p{i}", context=ctx) for i in range(20))
        )
        assert results == [{"answer": f"P{i}"} for i in range(20)]
        assert ctx.degradation.reason("redis") == "fallback_memory"
        assert not backend.breaker.available
        fault_redis.resume()
        assert await backend.breaker.probe_now()
        assert await pipeline.execute(model, "warm") == {"answer": "WARM"}
    finally:
        fault_redis.resume()
        await backend.breaker.aclose()
        await redis.aclose()
