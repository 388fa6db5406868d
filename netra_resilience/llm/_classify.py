"""Which LLM/HTTP failures are transient, and the server's delay hint, without importing SDKs.

The rules follow the openai SDK's own (``_base_client._should_retry``): connection errors and
timeouts, HTTP 408, 409, 429 and every 5xx are transient, and a ``x-should-retry: true|false``
response header overrides the status. They are duck-typed (``status_code``, ``response.headers``
and the class names the Stainless SDKs and httpx/httpx2 share), so the same predicate covers
openai, anthropic, httpx and httpx2 while the core stays free of those dependencies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import ExecutionRejectedError, TimeoutRejectedError
from netra_resilience.hints import RetryAfterHint, parse_retry_after_headers, retry_after_of
from netra_resilience.llm._errors import StreamTruncatedError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import OutcomePredicate

_TRANSIENT_STATUSES = frozenset({408, 409, 429})

# Base-class names shared by the SDK families we meet under agent stacks: openai and anthropic
# (``APIConnectionError`` -> ``APITimeoutError``; strict-mode ``APIResponseValidationError``),
# httpx and httpx2 (``TransportError`` covers connect/read/write errors, protocol errors and
# their ``TimeoutException``s). Matching names keeps those libraries optional.
_TRANSIENT_CLASS_NAMES = frozenset(
    {"APIConnectionError", "APITimeoutError", "APIResponseValidationError", "TransportError"}
)


def is_transient_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """HTTP 408, 409, 429 and 5xx are transient; ``x-should-retry`` overrides the status."""
    if headers is not None:
        flag = headers.get("x-should-retry")
        if flag == "true":
            return True
        if flag == "false":
            return False
    return status in _TRANSIENT_STATUSES or status >= 500


def _headers_of(exc: BaseException) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def is_transient_failure(exc: BaseException) -> bool:
    """True when retrying ``exc`` (an attempt's failure) may succeed.

    * our own rejections are not (an open breaker, a full bulkhead), except timeouts;
    * an explicit boolean ``transient`` attribute decides when present;
    * an integer ``status_code`` decides by :func:`is_transient_status`;
    * connection errors, timeouts, and a body that does not parse as JSON are transient;
    * everything else (4xx, programming errors) is not.
    """
    if not isinstance(exc, Exception):
        return False  # CancelledError and friends are never retried
    if isinstance(exc, ExecutionRejectedError):
        return isinstance(exc, TimeoutRejectedError)
    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return is_transient_status(status, _headers_of(exc))
    if isinstance(exc, ConnectionError | TimeoutError | json.JSONDecodeError):
        return True
    return any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(exc).__mro__)


def _transient_outcome(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return exc is not None and is_transient_failure(exc)


TRANSIENT_LLM_FAILURE = OutcomePredicate(_transient_outcome, "transient LLM/HTTP failure")
"""Retry predicate for LLM and HTTP calls (see :func:`is_transient_failure`)."""


def server_delay(headers: Mapping[str, str] | None, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, then ``Retry-After``)."""
    if headers is None:
        return None
    return parse_retry_after_headers(headers, clock.now())


def llm_retry_after(clock: Clock | None = None) -> RetryAfterHint:
    """A :data:`RetryAfterHint` for LLM/HTTP failures, reading HTTP-dates on ``clock``.

    A ``retry_after`` attribute (our ``UpstreamStatusError``) wins; otherwise the headers of
    the exception's ``response`` (openai's ``APIStatusError``) are parsed.
    """
    source = clock or SYSTEM_CLOCK

    def hint(outcome: Outcome[Any]) -> float | None:
        seconds = retry_after_of(outcome)
        if seconds is not None:
            return seconds
        exc = outcome.exception
        if exc is None or isinstance(exc, ExecutionRejectedError):
            return None
        return server_delay(_headers_of(exc), source)

    return hint


def _breaker_failure(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    if exc is None:
        return False
    # A stream cut after its first chunk is not retryable, but it is the dependency failing.
    return isinstance(exc, StreamTruncatedError) or is_transient_failure(exc)


def _dependency_failure(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return isinstance(exc, ExecutionRejectedError) or _breaker_failure(outcome)


LLM_BREAKER_FAILURE = OutcomePredicate(_breaker_failure, "LLM dependency failure")
"""Breaker predicate: transient failures plus streams truncated mid-way (never a 4xx)."""

LLM_DEPENDENCY_FAILURE = OutcomePredicate(_dependency_failure, "LLM unavailable")
"""Fallback/stale-cache predicate: the dependency failed or the pipeline refused the call
(open breaker, timeout, rate limit, full bulkhead). A 4xx is the caller's to see."""
