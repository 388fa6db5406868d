"""Redis (redis-py asyncio): one client, shared breaker state, a shared rate limiter, a
response cache and a session backend — each degrading to local state while Redis is down.
"""

from __future__ import annotations

from netra_resilience.integrations.redis._breaker import RedisCircuitStateStore
from netra_resilience.integrations.redis._cache import RedisCacheBackend
from netra_resilience.integrations.redis._client import (
    REDIS_ERRORS,
    redis_client,
    redis_should_handle,
)
from netra_resilience.integrations.redis._limiter import RedisRateLimiter
from netra_resilience.integrations.redis._sessions import RedisSessionBackend

__all__ = [
    "REDIS_ERRORS",
    "RedisCacheBackend",
    "RedisCircuitStateStore",
    "RedisRateLimiter",
    "RedisSessionBackend",
    "redis_client",
    "redis_should_handle",
]
