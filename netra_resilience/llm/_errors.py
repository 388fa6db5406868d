"""Errors of the LLM call path: typed stream truncation and the two stream timeouts."""

from __future__ import annotations

from netra_resilience.exceptions import NetraError, TimeoutRejectedError


class StreamTruncatedError(NetraError):
    """A stream ended before its terminal event: the answer the caller holds is incomplete.

    Raised by the stream wrapper instead of ending cleanly, so an agent can never mistake a
    cut-off answer for a whole one. ``chunks`` is how many chunks already reached the caller;
    once it is above zero nothing may be retried or replaced (the caller has seen them), which
    is why the error says ``transient = False`` then. ``reason`` is one of ``"error"`` (the
    transport or provider failed mid-way; see ``__cause__``), ``"idle_timeout"``,
    ``"incomplete"`` (the body ended without a terminal event) or ``"provider_error"`` (the
    provider sent an error event).
    """

    def __init__(
        self,
        message: str = "stream truncated",
        *,
        reason: str,
        chunks: int,
        dependency: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.chunks = chunks
        self.dependency = dependency
        # Before the first chunk reached the caller the whole call may still be retried.
        self.transient = chunks == 0


class FirstTokenTimeoutError(TimeoutRejectedError):
    """No content chunk arrived within the time-to-first-token limit (retryable)."""


class StreamIdleTimeoutError(TimeoutRejectedError):
    """No chunk arrived within the idle limit after the stream had started (the cause of a
    :class:`StreamTruncatedError` with ``reason="idle_timeout"``)."""
