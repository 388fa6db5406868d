"""Server-hinted delays: ``Retry-After`` / ``retry-after-ms`` and the ``retry_after`` attribute.

Retry, circuit breaker and rate limiter all honour an upstream hint. They read it through one
function type, :data:`RetryAfterHint`; the default reads a ``retry_after`` attribute (seconds)
from the outcome's exception, and HTTP integrations supply one that parses headers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from netra_resilience.exceptions import ExecutionRejectedError
from netra_resilience.outcome import Outcome

RetryAfterHint = Callable[[Outcome[Any]], float | None]

# RFC 9110 delay-seconds are ASCII digits; a decimal fraction is tolerated (some servers send
# "1.5"). Nothing else: float() would also take "inf", "1e9", "1_0" and non-ASCII digits.
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?", re.ASCII)


def _seconds(value: object) -> float | None:
    """A hint in seconds: any finite non-negative number, however large.

    A large hint is not malformed: it is the upstream asking for a long back-off, and each
    consumer applies its own cap (retry gives up above ``max_server_delay``, a breaker breaks
    for at most ``max_break_duration``, a limiter pauses for at most ``max_pause``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
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
    if _DECIMAL.fullmatch(text):
        return _seconds(float(text))
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
        text = millis.strip()
        if _DECIMAL.fullmatch(text):
            return _seconds(float(text) / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    return parse_retry_after_value(value, now)
