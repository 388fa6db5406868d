"""The streaming policy's settings and the small helpers both stream stages share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from netra_resilience.llm._errors import StreamTruncatedError
from netra_resilience.validation import Seconds, optional_duration, set_field, to_seconds

TRUNCATED = "stream_truncated"
"""The degradation reason marked when a stream is cut after reaching the caller."""

OnTruncated = Callable[[StreamTruncatedError], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamPolicy:
    """Time limits for a streamed LLM answer, measured on the injected clock.

    * ``first_token_timeout``: from opening the stream to the first chunk carrying an answer
      (a role-only delta or ``response.created`` does not count). Expiry is a retryable
      :class:`FirstTokenTimeoutError`.
    * ``idle_timeout``: the longest silence between two chunks afterwards. Expiry truncates
      the stream (``reason="idle_timeout"``). ``None`` disables either limit.
    """

    first_token_timeout: Seconds | None = 30.0
    idle_timeout: Seconds | None = 30.0

    def __post_init__(self) -> None:
        for name in ("first_token_timeout", "idle_timeout"):
            set_field(self, name, optional_duration("StreamPolicy", name, getattr(self, name)))


def to_seconds_or_none(value: Seconds | None) -> float | None:
    return None if value is None else to_seconds(value)


async def close_source(source: object) -> None:
    """Close an SDK stream / async generator / response, whichever method it has."""
    for name in ("aclose", "close"):
        method = getattr(source, name, None)
        if callable(method):
            try:
                result = method()
                if isinstance(result, Awaitable):
                    await result
            except Exception:  # closing a broken stream must not mask why it broke
                return
            return


def timer_expired(timer: object) -> bool:
    """Whether our own timer fired (not an outer one); a timer that cannot tell counts as ours."""
    expired = getattr(timer, "expired", None)
    return bool(expired()) if callable(expired) else True
