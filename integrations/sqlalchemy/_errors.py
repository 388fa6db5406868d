"""Which database errors mean the database (not the request) is failing."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from netra_resilience.predicates import OutcomePredicate, handle_exception

__all__ = ["sqlalchemy_should_handle"]


def _transient(exc: BaseException) -> bool:
    # OSError: asyncpg's connect errors (refused, reset, timed out) reach us unwrapped.
    if isinstance(exc, OperationalError | PoolTimeoutError | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


sqlalchemy_should_handle: OutcomePredicate = handle_exception(_transient)
"""Database errors worth a retry or a breaker count: lost connections, pool timeouts. A
statement's own error (bad data such as a NUL byte in a key, a constraint violation) and a
:class:`~netra_resilience.BulkheadRejectedError` from :class:`PoolBulkhead` are not."""
