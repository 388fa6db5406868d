"""Redis (redis-py asyncio): one client and one breaker per Redis server, shared by breaker
state, a rate limiter, a response cache and a session backend, each degrading to local state
while that breaker is open.

    redis = redis_client("redis://cache:6379/0")    # or your own redis.asyncio.Redis
    breaker = redis_breaker(redis)                   # Dependency("redis", ..., breaker=breaker)
    RedisCircuitStateStore(redis, breaker=breaker)
    RedisRateLimiter(redis, breaker=breaker, key="openai", rate=50, burst=10, replicas=4)
    RedisCacheBackend(redis, breaker=breaker)
    RedisBudgetStore(redis, breaker=breaker, replicas=4)   # Budget(limits, store=...)
    RedisRetryBudget(redis, breaker=breaker, key="openai", replicas=4)  # retries + hedges
    SessionStore(RedisSessionBackend(redis), database, primary_breaker=breaker)
    RedisEventLog(redis, breaker=breaker)               # wrap_engine(agent, event_log=...)
"""

from __future__ import annotations

from netra_resilience.integrations.redis._breaker import RedisCircuitStateStore
from netra_resilience.integrations.redis._budget import RedisBudgetStore
from netra_resilience.integrations.redis._cache import RedisCacheBackend
from netra_resilience.integrations.redis._client import (
    REDIS_ERRORS,
    redis_breaker,
    redis_client,
    redis_should_handle,
)
from netra_resilience.integrations.redis._events import RedisEventLog
from netra_resilience.integrations.redis._limiter import RedisRateLimiter
from netra_resilience.integrations.redis._retry_budget import RedisRetryBudget
from netra_resilience.integrations.redis._sessions import RedisSessionBackend

__all__ = [
    "REDIS_ERRORS",
    "RedisBudgetStore",
    "RedisCacheBackend",
    "RedisCircuitStateStore",
    "RedisEventLog",
    "RedisRateLimiter",
    "RedisRetryBudget",
    "RedisSessionBackend",
    "redis_breaker",
    "redis_client",
    "redis_should_handle",
]
