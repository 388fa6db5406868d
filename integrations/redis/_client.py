"""A redis-py asyncio client configured for netra-resilience (one retry owner, bounded waits),
and the one breaker in front of a Redis server that everything using it shares.

redis-py retries connection errors and timeouts itself by default (three times with backoff in
redis-py >= 6). Under a resilience pipeline that multiplies attempts and hides outages, so the
client built here has its inner retries off; the callers (breaker store, limiter, cache, session
store) bound every call with their own timeout and fall back. The pool *blocks* instead of
raising "Too many connections": a burst waits for a connection (still within the caller's
timeout) rather than being counted as a Redis failure.

    redis = redis_client("rediss://app:secret@cache:6380/0")   # or your own redis.asyncio.Redis
    breaker = redis_breaker(redis)   # one per Redis server; give it to health as its breaker
    RedisCircuitStateStore(redis, breaker=breaker)
    RedisRateLimiter(redis, breaker=breaker, key="search-api", rate=50, burst=10)
    RedisCacheBackend(redis, breaker=breaker)
    SessionStore(RedisSessionBackend(redis), database, primary_breaker=breaker)
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry  # the asyncio one: the sync class warns on every start
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.clock import Clock
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.predicates import OutcomePredicate, handle
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import Seconds

__all__ = ["REDIS_ERRORS", "redis_breaker", "redis_client", "redis_should_handle"]

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    BusyLoadingError,
    OSError,  # includes the builtin TimeoutError raised by our own deadlines
)
"""Exceptions that mean "Redis is unavailable right now" (not a bug in the command)."""

redis_should_handle: OutcomePredicate = handle(*REDIS_ERRORS)
"""Predicate for a retry or breaker placed around Redis calls. A command's own error (a
``ResponseError`` such as WRONGTYPE, a ``DataError`` for a bad argument) is not one of these."""


def redis_client(
    url: str,
    *,
    socket_timeout: float = 1.0,
    connect_timeout: float = 0.5,
    max_connections: int = 64,
    **kwargs: Any,
) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with inner retries off and a blocking pool.

    ``socket_timeout`` is only a backstop (a dead socket is noticed even without a caller
    deadline); the callers' own, shorter timeouts decide when to fall back.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=None,  # wait for a free connection; the caller's deadline bounds the wait
        retry=Retry(NoBackoff(), 0),
        retry_on_error=[],
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        **kwargs,
    )
    return Redis(connection_pool=pool)


def redis_breaker(
    client: Redis,
    *,
    name: str = "redis",
    timeout: Seconds = 0.1,
    failure_threshold: int = 3,
    retry_interval: Seconds = 1.0,
    clock: Clock | None = None,
    telemetry: TelemetryListener | None = None,
) -> BackendBreaker:
    """The :class:`~netra_resilience.circuit_breaker.BackendBreaker` for the Redis server
    behind ``client``: probed with ``PING``, opened by :data:`REDIS_ERRORS` and timeouts.

    Build one per Redis server and pass it to everything that uses that server (breaker
    store, limiter, cache, session store) and to its health ``Dependency(breaker=...)``.
    ``name`` is the dependency name in degradation marks, telemetry and health.
    """
    return BackendBreaker(
        client.ping,
        name=name,
        timeout=timeout,
        failure_threshold=failure_threshold,
        retry_interval=retry_interval,
        should_handle=redis_should_handle,
        clock=clock,
        telemetry=telemetry,
    )


def checked_breaker(owner: str, value: object) -> BackendBreaker:
    """``value`` if it is a :class:`BackendBreaker`; otherwise the error names the field."""
    if not isinstance(value, BackendBreaker):
        kind = type(value).__name__
        raise InvalidOptionsError(owner, "breaker", f"must be a BackendBreaker, got {kind}")
    return value
