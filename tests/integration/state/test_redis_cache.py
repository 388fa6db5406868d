"""The LLM response cache on a real Redis (aiocache), falling back to memory while it is down."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import Pipeline, PipelineBuilder
from netra_resilience.cache import CacheOptions
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import RedisCacheBackend
from tests.servers import RedisServer

# aiocache 0.12 calls redis-py's setex/close, which redis-py 8 marks deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


def cached(backend: RedisCacheBackend) -> Pipeline:
    options = CacheOptions(
        backend=backend,
        key=lambda ctx, args, kwargs: str(args[0]),
        ttl=600,
        stale_ttl=3600,
        backend_timeout=1.0,  # the backend's own 0.1 s gate timeout is the one that acts
        include_scope=False,  # anonymous test calls: one shared cache
    )
    return PipelineBuilder("llm").add_cache(options).build()


class Model:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str) -> dict[str, Any]:
        self.calls += 1
        return {"answer": prompt.upper()}


async def test_replicas_share_answers_through_redis(
    redis_server: RedisServer, namespace: str
) -> None:
    a = RedisCacheBackend.from_url(redis_server.url, namespace=namespace)
    b = RedisCacheBackend.from_url(redis_server.url, namespace=namespace)
    model = Model()
    try:
        assert await cached(a).execute(model, "hi") == {"answer": "HI"}
        ctx = ResilienceContext("chat")
        assert await cached(b).execute(model, "hi", context=ctx) == {"answer": "HI"}
        assert model.calls == 1  # b was answered from Redis
        assert not ctx.degradation
    finally:
        await a.close()
        await b.close()


async def test_redis_sigkill_mid_load_memory_fallback_flagged_then_redis_again(
    fault_redis: RedisServer, namespace: str
) -> None:
    backend = RedisCacheBackend.from_url(fault_redis.url, namespace=namespace)
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
        assert not backend.gate.available
        # During the outage the answers recomputed once are served from memory.
        before = model.calls
        assert await pipeline.execute(model, "q3") == {"answer": "Q3"}
        assert model.calls == before

        fault_redis.start()
        assert await backend.gate.probe_now()
        ctx = ResilienceContext("chat")
        assert await pipeline.execute(model, "new", context=ctx) == {"answer": "NEW"}
        assert not ctx.degradation  # Redis serves again
    finally:
        await backend.close()


async def test_redis_sigstop_bounded_then_sigcont(fault_redis: RedisServer, namespace: str) -> None:
    backend = RedisCacheBackend.from_url(fault_redis.url, namespace=namespace, timeout=0.05)
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
        fault_redis.resume()
        assert await backend.gate.probe_now()
        assert await pipeline.execute(model, "warm") == {"answer": "WARM"}
    finally:
        fault_redis.resume()
        await backend.close()
