"""Server-hinted delays: ``Retry-After`` / ``retry-after-ms`` and the ``retry_after`` attribute.

Retry, circuit breaker and rate limiter all honour an upstream hint. They read it through one
function type, :data:`RetryAfterHint`; the default reads a ``retry_after`` attribute (seconds)
from the outcome's exception, and HTTP integrations supply one that parses headers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from netra_resilience.exceptions import ExecutionRejectedError
from netra_resilience.outcome import Outcome

RetryAfterHint = Callable[[Outcome[Any]], float | None]

# A hint longer than this is treated as malformed rather than obeyed (a day).
MAX_SANE_HINT = 86_400.0


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0 or seconds > MAX_SANE_HINT:
        return None
    return seconds


def retry_after_of(outcome: Outcome[Any]) -> float | None:
    """Default hint: ``outcome.exception.retry_after`` in seconds, when it is sane.

    Our own rejections are skipped: an open breaker's ``retry_after`` is not an upstream hint.
    """
    exc = outcome.exception
    if exc is None or isinstance(exc, ExecutionRejectedError):
        return None
    return _seconds(getattr(exc, "retry_after", None))


def parse_retry_after_value(value: str, now: datetime) -> float | None:
    """Parse a ``Retry-After`` header value: delay-seconds or an HTTP-date. Bad input -> None."""
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():  # "²".isdigit() is True; int() rejects it
        return _seconds(int(text))
    try:
        seconds = float(text)  # some servers send "1.5" although the RFC says integers
    except ValueError:
        pass
    else:
        return _seconds(seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _seconds(max((when - now).total_seconds(), 0.0))


def parse_retry_after_headers(headers: Mapping[str, str], now: datetime) -> float | None:
    """``retry-after-ms`` (milliseconds, as OpenAI sends it) wins over ``Retry-After``."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            ms = float(millis.strip()[:32])
        except ValueError:
            ms = math.nan
        seconds = _seconds(ms / 1000.0) if not math.isnan(ms) else None
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if value is None:
        return None
    return parse_retry_after_value(value, now)
