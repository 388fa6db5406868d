"""Streaming policy: retry/fall back only before the first chunk; TTFT and idle timeouts;
a stream cut after the first chunk ends with :class:`StreamTruncatedError`, never cleanly.

:func:`open_stream` is what a pipeline runs for a streaming call: it opens the stream and
waits (under the time-to-first-token limit) for the first chunk that carries an answer.
Until then every failure is an ordinary, retryable attempt failure. It returns a
:class:`ResilientStream` holding the chunks read so far; from there on the pipeline is done,
and the wrapper enforces the idle limit and turns any early end into a truncation error.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.llm._errors import FirstTokenTimeoutError, StreamTruncatedError
from netra_resilience.llm._resilient_stream import ResilientStream
from netra_resilience.llm._stream_policy import (
    TRUNCATED,
    OnTruncated,
    StreamPolicy,
    close_source,
    timer_expired,
    to_seconds_or_none,
)
from netra_resilience.llm._trackers import EndOfBodyTracker, StreamTracker

# Re-exported: the package and older callers import these from here.
__all__ = [
    "TRUNCATED",
    "OnTruncated",
    "ResilientStream",
    "StreamPolicy",
    "open_stream",
    "to_seconds_or_none",
]


async def open_stream(
    open_fn: Callable[[], Awaitable[Any]],
    *,
    policy: StreamPolicy,
    clock: Clock | None = None,
    tracker: StreamTracker | None = None,
    dependency: str = "llm",
    context: ResilienceContext | None = None,
    on_truncated: OnTruncated | None = None,
) -> ResilientStream[Any]:
    """Open a stream and read up to its first answer chunk, within ``first_token_timeout``.

    Raises (as an ordinary attempt failure) whatever opening raised, a
    :class:`FirstTokenTimeoutError`, or a retryable :class:`StreamTruncatedError` with
    ``chunks == 0`` when the stream ended before any answer.
    """
    clk = clock or SYSTEM_CLOCK
    track = tracker if tracker is not None else EndOfBodyTracker()
    ttft = to_seconds_or_none(policy.first_token_timeout)
    source: Any = None
    buffered: deque[Any] = deque()
    ended = False
    try:
        async with clk.timeout(ttft) as timer:
            try:
                source = await open_fn()
                iterator: AsyncIterator[Any] = source.__aiter__()
                while True:
                    chunk = await iterator.__anext__()
                    track.observe(chunk)
                    buffered.append(chunk)
                    if not track.is_preamble(chunk):
                        break
            except StopAsyncIteration:
                ended = True
    except TimeoutError as exc:
        await close_source(source)
        if not timer_expired(timer):
            raise
        raise FirstTokenTimeoutError(
            "no answer chunk within the first-token timeout", timeout=ttft, dependency=dependency
        ) from exc
    except BaseException:
        await close_source(source)
        raise
    if ended and not (buffered and track.complete):
        await close_source(source)
        raise StreamTruncatedError(
            "stream ended before any answer", reason="incomplete", chunks=0, dependency=dependency
        )
    return ResilientStream(
        source,
        iterator,
        buffered,
        tracker=track,
        clock=clk,
        idle_timeout=to_seconds_or_none(policy.idle_timeout),
        dependency=dependency,
        context=context,
        on_truncated=on_truncated,
        ended=ended,
    )
