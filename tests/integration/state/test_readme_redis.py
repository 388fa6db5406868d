"""The README's shared-state snippet, as printed, against a real redis-server.

The snippet for the README's Redis section (the client, one breaker for that Redis shared by
everything using it, and health seeing it):

    redis = redis_client("redis://cache:6379/0")
    redis_health = redis_breaker(redis)  # one per Redis server: one probe, seen by health
    llm_pipeline = standard_llm_pipeline(
        "llm",
        cache=RedisCacheBackend(redis, breaker=redis_health),
        rate_limiter=RateLimiterOptions(
            limiter=RedisRateLimiter(
                redis, breaker=redis_health, key="openai", rate=50, burst=10, replicas=4
            )
        ),
        breaker_store=RedisCircuitStateStore(redis, breaker=redis_health),
    )
    db = SqlSessionBackend(create_pooled_engine("postgresql+asyncpg://app@db/app"))
    sessions = SessionStore(RedisSessionBackend(redis), db, primary_breaker=redis_health)
    Dependency("redis", "important", breaker=redis_health, check=redis.ping)
"""

from __future__ import annotations

from pathlib import Path

from netra_resilience import RateLimiterOptions, standard_llm_pipeline
from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.health import Dependency
from netra_resilience.integrations.redis import (
    RedisCacheBackend,
    RedisCircuitStateStore,
    RedisRateLimiter,
    RedisSessionBackend,
    redis_breaker,
    redis_client,
)
from netra_resilience.integrations.sqlalchemy import SqlSessionBackend, create_pooled_engine
from netra_resilience.sessions import SessionStore
from tests.servers import RedisServer


async def test_readme_shared_state_snippet_runs(redis_server: RedisServer, tmp_path: Path) -> None:
    url = redis_server.url
    redis = redis_client(url)
    redis_health = redis_breaker(redis)
    llm_pipeline = standard_llm_pipeline(
        "llm",
        cache=RedisCacheBackend(redis, breaker=redis_health),
        rate_limiter=RateLimiterOptions(
            limiter=RedisRateLimiter(
                redis, breaker=redis_health, key="readme-openai", rate=50, burst=10, replicas=4
            )
        ),
        breaker_store=RedisCircuitStateStore(redis, breaker=redis_health),
    )
    engine = create_pooled_engine(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    db = SqlSessionBackend(engine)
    await db.create_schema()
    sessions = SessionStore(RedisSessionBackend(redis), db, primary_breaker=redis_health)
    assert Dependency("redis", "important", breaker=redis_health, check=redis.ping)

    async def answer() -> str:
        return "hello"

    assert await llm_pipeline.execute(answer) == "hello"
    breaker = llm_pipeline.find(CircuitBreakerStrategy)
    assert breaker is not None and breaker.state is CircuitState.CLOSED
    await sessions.put("s1", {"turns": 1}, ttl=60)
    record = await sessions.get("s1")
    assert record is not None
    await sessions.aclose()
    await db.database.aclose()
    await engine.dispose()
    await redis.aclose()
