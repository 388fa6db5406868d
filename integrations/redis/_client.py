"""A redis-py asyncio client configured for netra-resilience: one retry owner, bounded waits.

redis-py retries connection errors and timeouts itself by default (three times with backoff in
redis-py >= 6). Under a resilience pipeline that multiplies attempts and hides outages, so the
client built here has its inner retries off; the callers (breaker store, limiter, cache, session
store) bound every call with their own timeout and fall back. The pool *blocks* instead of
raising "Too many connections": a burst waits for a connection (still within the caller's
timeout) rather than being counted as a Redis failure.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry  # the asyncio one: the sync class warns on every start
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from netra_resilience.predicates import OutcomePredicate, handle

__all__ = ["REDIS_ERRORS", "redis_client", "redis_should_handle"]

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    BusyLoadingError,
    OSError,  # includes the builtin TimeoutError raised by our own deadlines
)
"""Exceptions that mean "Redis is unavailable right now" (not a bug in the command)."""

redis_should_handle: OutcomePredicate = handle(*REDIS_ERRORS)
"""Predicate for a retry or breaker placed around Redis calls."""


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
