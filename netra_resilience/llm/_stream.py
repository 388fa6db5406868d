"""Streaming: retry and fallback only before the first chunk, first-token and idle timeouts,
and the breaker fed with the stream's real outcome.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import NetraError
from netra_resilience.llm._request import (
    FirstTokenTimeoutError,
    StreamIdleTimeoutError,
    StreamTruncatedError,
)
from netra_resilience.validation import Seconds, optional_duration, set_field, to_seconds


class StreamTracker(Protocol):
    """Observes every chunk of one stream (one tracker per stream)."""

    def observe(self, chunk: Any) -> None:
        """Record a chunk; raise to signal a provider error event inside the stream."""

    def is_preamble(self, chunk: Any) -> bool:
        """True for chunks that carry no answer yet (a role-only delta, ``response.created``)."""

    @property
    def complete(self) -> bool:
        """True once the terminal event was seen."""


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: SDK models and plain JSON dicts alike."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class StreamProviderError(NetraError):
    """The provider reported an error inside the stream (an SSE ``error`` event)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"provider sent {kind} inside the stream")
        self.kind = kind


class ChatStreamTracker:
    """Chat completions: complete when every choice index seen has a ``finish_reason``."""

    __slots__ = ("_finished", "_open")

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._finished = False

    def observe(self, chunk: Any) -> None:
        if field(chunk, "error"):
            raise StreamProviderError("an error chunk")
        for choice in field(chunk, "choices") or ():
            index = field(choice, "index") or 0
            if field(choice, "finish_reason") is not None:
                self._open.discard(index)
                self._finished = True
            else:
                self._open.add(index)

    def is_preamble(self, chunk: Any) -> bool:
        if field(chunk, "usage"):
            return False
        for choice in field(chunk, "choices") or ():
            if field(choice, "finish_reason") is not None:
                return False
            delta = field(choice, "delta")
            if delta is None:
                return False
            for name in ("content", "tool_calls", "refusal", "function_call", "audio"):
                if field(delta, name):
                    return False
        return True

    @property
    def complete(self) -> bool:
        return self._finished and not self._open


_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete"})
_RESPONSES_FAILED = frozenset({"response.failed", "error"})
_RESPONSES_PREAMBLE = frozenset({"response.created", "response.in_progress", "response.queued"})


class ResponsesStreamTracker:
    """Responses API: complete on ``response.completed``/``incomplete``; ``failed`` raises."""

    __slots__ = ("_complete",)

    def __init__(self) -> None:
        self._complete = False

    def observe(self, chunk: Any) -> None:
        kind = field(chunk, "type")
        if kind in _RESPONSES_FAILED:
            raise StreamProviderError(str(kind))
        if kind in _RESPONSES_TERMINAL:
            self._complete = True

    def is_preamble(self, chunk: Any) -> bool:
        return field(chunk, "type") in _RESPONSES_PREAMBLE

    @property
    def complete(self) -> bool:
        return self._complete


_MESSAGES_PREAMBLE = frozenset({"message_start", "content_block_start", "ping"})


class MessagesStreamTracker:
    """Anthropic Messages API: complete on ``message_stop``; an ``error`` event raises. The
    answer starts with the first delta (``message_start`` and an empty block are preamble)."""

    __slots__ = ("_complete",)

    def __init__(self) -> None:
        self._complete = False

    def observe(self, chunk: Any) -> None:
        kind = field(chunk, "type")
        if kind == "error":
            raise StreamProviderError("an error event")
        if kind == "message_stop":
            self._complete = True

    def is_preamble(self, chunk: Any) -> bool:
        return field(chunk, "type") in _MESSAGES_PREAMBLE

    @property
    def complete(self) -> bool:
        return self._complete


class EndOfBodyTracker:
    """For streams without a terminal event: a clean end of the body counts as complete."""

    __slots__ = ()

    def observe(self, chunk: Any) -> None:
        return None

    def is_preamble(self, chunk: Any) -> bool:
        return False

    @property
    def complete(self) -> bool:
        return True


def tracker_for(kind: str) -> StreamTracker:
    """The tracker for an API kind (``"chat"``, ``"responses"``, ``"messages"``; others: end
    of body)."""
    if kind == "chat":
        return ChatStreamTracker()
    if kind == "responses":
        return ResponsesStreamTracker()
    if kind == "messages":
        return MessagesStreamTracker()
    return EndOfBodyTracker()


TRUNCATED = "stream_truncated"
"""The degradation reason marked when a stream is cut after reaching the caller."""

OnTruncated = Callable[[StreamTruncatedError], Awaitable[None]]
OnEnd = Callable[["ResilientStream[Any]"], Awaitable[None]]


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


T = TypeVar("T")


class ResilientStream(Generic[T]):
    """An async iterator over a started stream that never ends cleanly when it was cut.

    Iterate it (``async for chunk in stream``) or use it as an async context manager; leaving
    early closes the underlying stream. A failure, an idle timeout or a body that ends without
    the terminal event raises :class:`StreamTruncatedError` (the chunk count says how much the
    caller already has), marks the dependency ``stream_truncated`` on the context's
    degradation, and reports the failure (``on_truncated``, e.g. to the circuit breaker).
    """

    __slots__ = (
        "_buffer",
        "_clock",
        "_context",
        "_delivered",
        "_dependency",
        "_done",
        "_ended",
        "_idle",
        "_iterator",
        "_on_end",
        "_on_truncated",
        "_source",
        "_tracker",
        "truncation",
    )

    def __init__(
        self,
        source: Any,
        iterator: AsyncIterator[T],
        buffered: deque[T],
        *,
        tracker: StreamTracker,
        clock: Clock,
        idle_timeout: float | None,
        dependency: str,
        context: ResilienceContext | None,
        on_truncated: OnTruncated | None,
        ended: bool = False,
        on_end: OnEnd | None = None,
    ) -> None:
        self._source = source
        self._iterator = iterator
        self._buffer = buffered
        self._tracker = tracker
        self._clock = clock
        self._idle = idle_timeout
        self._dependency = dependency
        self._context = context
        self._on_truncated = on_truncated
        self._on_end = on_end  # once, however the stream ends (a budget settles here)
        self._ended = ended
        self._done = False
        self._delivered = 0
        self.truncation: StreamTruncatedError | None = None

    @property
    def source(self) -> Any:
        """The underlying stream (e.g. openai's ``AsyncStream``; its ``.response`` headers)."""
        return self._source

    @property
    def completed(self) -> bool:
        """True once the stream ended with its terminal event."""
        return self._done and self.truncation is None and self._tracker.complete

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._buffer:
            self._delivered += 1
            return self._buffer.popleft()
        if self._done or self._ended:
            return await self._finish()
        try:
            if self._idle is None:
                chunk = await self._iterator.__anext__()
            else:
                async with self._clock.timeout(self._idle) as timer:
                    chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            return await self._finish()
        except TimeoutError as exc:
            if self._idle is not None and timer_expired(timer):
                cause: BaseException = StreamIdleTimeoutError(
                    "no chunk within the idle timeout",
                    timeout=self._idle,
                    dependency=self._dependency,
                )
                cause.__cause__ = exc
                raise await self._truncate("idle_timeout", cause) from cause
            raise await self._truncate("error", exc) from exc
        except Exception as exc:
            raise await self._truncate("error", exc) from exc
        try:
            self._tracker.observe(chunk)
        except Exception as exc:
            raise await self._truncate("provider_error", exc) from exc
        self._delivered += 1
        return chunk

    async def _finish(self) -> T:
        if not self._done:
            self._done = True
            if not self._tracker.complete:
                raise await self._truncate("incomplete", None)
            await close_source(self._source)
            await self._end()
        if self.truncation is not None:
            raise self.truncation
        raise StopAsyncIteration

    async def _truncate(self, reason: str, cause: BaseException | None) -> StreamTruncatedError:
        self._done = True
        await close_source(self._source)
        error = StreamTruncatedError(
            f"stream truncated after {self._delivered} chunks ({reason})",
            reason=reason,
            chunks=self._delivered,
            dependency=self._dependency,
        )
        self.truncation = error
        if self._context is not None:
            self._context.degradation.mark(self._dependency, TRUNCATED)
        if self._on_truncated is not None:
            with contextlib.suppress(Exception):  # reporting must not replace the signal
                await self._on_truncated(error)
        await self._end()
        return error

    async def _end(self) -> None:
        callback, self._on_end = self._on_end, None
        if callback is not None:
            with contextlib.suppress(Exception):  # accounting must not replace the answer
                await callback(self)

    async def aclose(self) -> None:
        """Stop early: close the underlying stream (not a truncation: the caller chose it)."""
        if not self._done:
            self._done = True
            self._buffer.clear()
            await close_source(self._source)
            await self._end()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# Re-exported: the package and older callers import these from here.


async def open_stream(
    open_fn: Callable[[], Awaitable[Any]],
    *,
    policy: StreamPolicy,
    clock: Clock | None = None,
    tracker: StreamTracker | None = None,
    dependency: str = "llm",
    context: ResilienceContext | None = None,
    on_truncated: OnTruncated | None = None,
    on_end: OnEnd | None = None,
) -> ResilientStream[Any]:
    """Open a stream and read up to its first answer chunk, within ``first_token_timeout``.

    ``on_end(stream)`` runs once when the returned stream ends: completed, cut or closed.
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
        on_end=on_end,
    )


__all__ = [
    "TRUNCATED",
    "OnEnd",
    "OnTruncated",
    "ResilientStream",
    "StreamPolicy",
    "open_stream",
    "to_seconds_or_none",
]
