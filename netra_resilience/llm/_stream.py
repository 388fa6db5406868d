"""Streaming: retry and fallback only before the first chunk, first-token and idle timeouts,
and the breaker fed with the stream's real outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, Protocol, Self, TypeVar

from netra_resilience.clock import SYSTEM_CLOCK, Cancellable, Clock, call_later_of
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import NetraError
from netra_resilience.llm._request import (
    FirstTokenTimeoutError,
    StreamIdleTimeoutError,
    StreamTruncatedError,
    keeps_extras,
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


class FieldPair:
    """Reads two named fields of one chunk type, the way worked out once for that type.

    :func:`field` on every chunk pays a ``Mapping`` check per name and, for a name a pydantic
    model does not declare (``error`` on a chat chunk), a raising ``__getattr__``. Here:

    * a pydantic model declaring both names: one C-level ``attrgetter`` (declared fields are
      plain instance attributes). A model built without one of them (``model_construct`` of
      malformed upstream data) raises ``AttributeError``: callers read that object with
      :func:`field` instead;
    * a pydantic model declaring only one: that one and the model's extras in one
      ``attrgetter``, the other from the extras (where ``getattr`` would find it);
    * a ``dict`` by ``get``; anything else, or an undeclared name that is a class attribute,
      through :func:`field`.

    ``read(obj)`` is for objects of exactly type ``cls``: callers keep one pair per type.
    """

    __slots__ = ("cls", "read")

    def __init__(self, cls: type, first: str, second: str) -> None:
        self.cls = cls
        self.read: Callable[[Any], tuple[Any, Any]] = _pair_reader(cls, first, second)


def _pair_reader(cls: type, first: str, second: str) -> Callable[[Any], tuple[Any, Any]]:
    declared = getattr(cls, "__pydantic_fields__", None)
    if isinstance(declared, dict) and keeps_extras(cls):
        in_first, in_second = first in declared, second in declared
        if in_first and in_second:
            return attrgetter(first, second)
        if not (in_first or hasattr(cls, first)) and in_second:
            extra_and_second = attrgetter("__pydantic_extra__", second)

            def read_extra_first(obj: Any) -> tuple[Any, Any]:
                extra, value = extra_and_second(obj)
                return (extra.get(first) if extra else None), value

            return read_extra_first
        if in_first and not (in_second or hasattr(cls, second)):
            first_and_extra = attrgetter(first, "__pydantic_extra__")

            def read_extra_second(obj: Any) -> tuple[Any, Any]:
                value, extra = first_and_extra(obj)
                return value, (extra.get(second) if extra else None)

            return read_extra_second
    if cls is dict:

        def read_dict(obj: Any) -> tuple[Any, Any]:
            return obj.get(first), obj.get(second)

        return read_dict

    def read_any(obj: Any) -> tuple[Any, Any]:
        return field(obj, first), field(obj, second)

    return read_any


class _Unseen:
    """The type of no chunk: a tracker's first chunk picks its reader."""


UNSEEN = FieldPair(_Unseen, "", "")


class StreamProviderError(NetraError):
    """The provider reported an error inside the stream (an SSE ``error`` event)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"provider sent {kind} inside the stream")
        self.kind = kind


ChatChunkRead = Callable[[Any], tuple[Mapping[str, Any] | None, Any, Any]]


def _read_chat_any(chunk: Any) -> tuple[Mapping[str, Any] | None, Any, Any]:
    error = field(chunk, "error")
    usage = field(chunk, "usage")
    return (
        ({"error": error} if error else None),
        field(chunk, "choices"),
        (usage if usage is not None else field(chunk, "response")),
    )


def _chat_reader(cls: type) -> ChatChunkRead:
    """``(extras, choices, usage)`` of a chat chunk: extras holding ``error`` when there is
    one, ``usage`` not ``None`` when the chunk may report usage. For the SDK's pydantic chunk
    (``choices``/``usage`` declared, ``error``/``response`` not) one C-level ``attrgetter``:
    the extras are the model's own, where an ``error`` or ``response`` sent would be."""
    declared = getattr(cls, "__pydantic_fields__", None)
    if (
        keeps_extras(cls)
        and isinstance(declared, dict)
        and {"choices", "usage"} <= declared.keys()
        and not any(name in declared or hasattr(cls, name) for name in ("error", "response"))
    ):
        return attrgetter("__pydantic_extra__", "choices", "usage")
    return _read_chat_any


class ChatStreamTracker:
    """Chat completions: complete when every choice index seen has a ``finish_reason``.

    ``on_usage``, when set (:class:`~netra_resilience.llm.MeteredTracker` sets it), is called
    with each chunk that may report usage: few do, so nothing else parses chunks for it.
    """

    __slots__ = ("_choice", "_finished", "_open", "_read", "_type", "on_usage")

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._finished = False
        self._type: type = _Unseen
        self._read: ChatChunkRead = _read_chat_any
        self._choice = UNSEEN
        self.on_usage: Callable[[Any], None] | None = None

    def observe(self, chunk: Any) -> None:
        if type(chunk) is not self._type:
            self._type = type(chunk)
            self._read = _chat_reader(self._type)
        try:
            extra, choices, usage = self._read(chunk)
        except AttributeError:  # a model built without a declared field (malformed data)
            extra, choices, usage = _read_chat_any(chunk)
        if extra:
            if extra.get("error"):
                raise StreamProviderError("an error chunk")
            usage = chunk  # undeclared fields: the meter looks for usage in them
        if usage is not None and self.on_usage is not None:
            self.on_usage(chunk)
        if not choices:
            return
        for choice in choices:
            fields = self._choice
            if fields.cls is not type(choice):
                fields = self._choice = FieldPair(type(choice), "index", "finish_reason")
            try:
                index, finish = fields.read(choice)
            except AttributeError:
                index, finish = field(choice, "index"), field(choice, "finish_reason")
            if finish is not None:
                self._open.discard(index or 0)
                self._finished = True
            else:
                self._open.add(index or 0)

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

    __slots__ = ("_complete", "_event")

    def __init__(self) -> None:
        self._complete = False
        self._event = UNSEEN

    def observe(self, chunk: Any) -> None:
        fields = self._event
        if fields.cls is not type(chunk):
            fields = self._event = FieldPair(type(chunk), "type", "type")
        try:
            kind = fields.read(chunk)[0]
        except AttributeError:
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

    __slots__ = ("_complete", "_event")

    def __init__(self) -> None:
        self._complete = False
        self._event = UNSEEN

    def observe(self, chunk: Any) -> None:
        fields = self._event
        if fields.cls is not type(chunk):
            fields = self._event = FieldPair(type(chunk), "type", "type")
        try:
            kind = fields.read(chunk)[0]
        except AttributeError:
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


class IdleWatch:
    """A stream's idle limit on one timer, re-armed lazily, instead of a timeout per chunk.

    Each wait for a chunk records its task and when it began (:meth:`begin`, then
    :meth:`end`; the stream inlines ``begin`` once the timer is armed, hence the public
    fields). The timer, armed by the first wait, checks on expiry whether the wait in
    progress has lasted the whole limit. If so it cancels the waiting task (as
    ``asyncio.timeout`` does; :meth:`end` tells that cancel from anyone else's); if that wait
    began later it re-arms for the rest; with no wait in progress it is dropped and the next
    wait arms it again. A stream costs one timer per ``limit`` of its life, not one per chunk.
    """

    __slots__ = (
        "_call_later",
        "_limit",
        "cancelling",
        "current_task",
        "fired",
        "handle",
        "monotonic",
        "since",
        "task",
    )

    def __init__(
        self,
        limit: float,
        clock: Clock,
        call_later: Callable[[float, Callable[[], object]], Cancellable],
    ) -> None:
        self._limit = limit
        self.monotonic = clock.monotonic
        self._call_later = call_later
        self.current_task = _task_lookup()
        self.handle: Cancellable | None = None
        """The pending timer, if any."""
        self.since = 0.0
        self.cancelling = 0
        self.task: asyncio.Task[Any] | None = None
        """The task waiting for a chunk now (``None`` between waits)."""
        self.fired = False
        """The limit cancelled :attr:`task`; :meth:`end` takes that cancel back."""

    def begin(self) -> None:
        """A wait for the next chunk starts now, in the current task."""
        task = self.current_task()
        if task is None:
            raise RuntimeError("a stream with an idle timeout is read inside an asyncio task")
        self.task = task
        self.cancelling = task.cancelling()
        self.since = self.monotonic()
        if self.handle is None:
            self.handle = self._call_later(self._limit, self._expire)

    def end(self, error: BaseException | None) -> bool:
        """The wait is over (``error``: what it raised); True when the idle limit ended it.

        After a successful wait the caller only clears :attr:`task` (the hot path) and calls
        this when :attr:`fired` is set: a source that swallowed the cancel still gave a chunk.
        """
        task, self.task = self.task, None
        if not self.fired or task is None:
            return False
        self.fired = False
        # Ours alone when no other cancel request arrived meanwhile (asyncio.Timeout's rule).
        return task.uncancel() <= self.cancelling and isinstance(error, asyncio.CancelledError)

    def stop(self) -> None:
        """Release the timer (the stream ended, or its reader gave up)."""
        self.task = None
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.cancel()

    def _expire(self) -> None:
        self.handle = None
        task = self.task
        if task is None:
            return  # between waits: the next one re-arms
        left = self.since + self._limit - self.monotonic()
        if left > _SLACK:
            self.handle = self._call_later(left, self._expire)
            return
        self.fired = True
        task.cancel()


_SLACK = 1e-6
"""Expiry this close to the limit counts as reached (a re-arm for less could spin on a float
rounding of ``now + left`` back to ``now``)."""


def _task_lookup() -> Callable[[], asyncio.Task[Any] | None]:
    """``asyncio.current_task`` as cheap as this Python makes it, for a per-chunk call.

    3.12+ has it in C. 3.11's is a Python function over a loop-keyed dict: bound to the
    running loop (a stream lives in one) it is a C ``partial``, a fifth of the cost.
    """
    tasks = getattr(asyncio.tasks, "_current_tasks", None)
    if sys.version_info >= (3, 12) or not isinstance(tasks, dict):
        return asyncio.current_task
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.current_task
    return functools.partial(tasks.get, loop)


class _IdleExpired(Exception):
    """A per-chunk timeout of our own expired (the fallback for clocks without timers)."""


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

    Per chunk it costs one coroutine frame around the source's own ``__anext__``, the
    tracker's ``observe`` and, with an idle limit, one clock read: the limit is one
    :class:`IdleWatch` timer for the whole stream (a clock without ``call_later`` falls back
    to a ``clock.timeout`` per chunk).
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
        "_live",
        "_next",
        "_observe",
        "_on_end",
        "_on_truncated",
        "_source",
        "_tracker",
        "_watch",
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
        self._observe = tracker.observe  # bound once: read on every chunk
        self._clock = clock
        self._idle = idle_timeout
        self._dependency = dependency
        self._context = context
        self._on_truncated = on_truncated
        self._on_end = on_end  # once, however the stream ends (a budget settles here)
        self._ended = ended
        self._done = False
        # The hot path's one test: the next chunk comes from the source (nothing buffered,
        # not ended); anything else goes through _next_slow.
        self._live = not buffered and not ended
        self._delivered = 0
        self.truncation: StreamTruncatedError | None = None
        self._watch: IdleWatch | None = None
        self._next: Callable[[], Awaitable[T]] = iterator.__anext__
        if idle_timeout is not None:
            call_later = call_later_of(clock)
            if call_later is not None:
                self._watch = IdleWatch(idle_timeout, clock, call_later)
            else:
                self._next = self._next_within_idle

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
        if not self._live:
            return await self._next_slow()
        watch = self._watch
        if watch is not None:
            task = watch.current_task()
            if task is None or watch.handle is None:
                watch.begin()  # arms the timer (or refuses a read outside a task)
            else:  # IdleWatch.begin inlined for the common case: this runs for every chunk
                watch.task = task
                watch.cancelling = task.cancelling()
                watch.since = watch.monotonic()
        try:
            chunk = await self._next()
        except BaseException as exc:
            return await self._wait_failed(exc)
        if watch is not None:
            watch.task = None
            if watch.fired:
                watch.end(None)
        try:
            self._observe(chunk)
        except Exception as exc:
            raise await self._truncate("provider_error", exc) from exc
        self._delivered += 1
        return chunk

    async def _next_slow(self) -> T:
        if self._buffer:
            self._delivered += 1
            chunk = self._buffer.popleft()
            self._live = not self._buffer and not self._ended and not self._done
            return chunk
        return await self._finish()

    async def _next_within_idle(self) -> T:
        """The next chunk under a timeout of its own (for a clock without ``call_later``)."""
        try:
            async with self._clock.timeout(self._idle) as timer:
                return await self._iterator.__anext__()
        except TimeoutError as exc:
            if timer_expired(timer):
                raise _IdleExpired from exc
            raise

    async def _wait_failed(self, error: BaseException) -> T:
        """What waiting for a chunk raised becomes: the end, a truncation or (a cancel) itself."""
        watch = self._watch
        if watch is not None and watch.end(error):  # our cancel: the wait lasted the limit
            timeout = TimeoutError()
            timeout.__cause__ = error
            raise await self._idle_expired(timeout)
        if isinstance(error, _IdleExpired):
            raise await self._idle_expired(error.__cause__ or error)
        if isinstance(error, StopAsyncIteration):
            return await self._finish()
        if isinstance(error, Exception):
            raise await self._truncate("error", error) from error
        if watch is not None:
            watch.stop()  # cancelled (or exiting): the next read, if any, re-arms
        raise error

    async def _idle_expired(self, expiry: BaseException) -> StreamTruncatedError:
        cause = StreamIdleTimeoutError(
            "no chunk within the idle timeout", timeout=self._idle, dependency=self._dependency
        )
        cause.__cause__ = expiry
        error = await self._truncate("idle_timeout", cause)
        error.__cause__ = cause
        return error

    async def _finish(self) -> T:
        if not self._done:
            self._mark_done()
            if not self._tracker.complete:
                raise await self._truncate("incomplete", None)
            await close_source(self._source)
            await self._end()
        if self.truncation is not None:
            raise self.truncation
        raise StopAsyncIteration

    async def _truncate(self, reason: str, cause: BaseException | None) -> StreamTruncatedError:
        self._mark_done()
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

    def _mark_done(self) -> None:
        self._done = True
        self._live = False
        if self._watch is not None:
            self._watch.stop()

    async def _end(self) -> None:
        callback, self._on_end = self._on_end, None
        if callback is not None:
            with contextlib.suppress(Exception):  # accounting must not replace the answer
                await callback(self)

    async def aclose(self) -> None:
        """Stop early: close the underlying stream (not a truncation: the caller chose it)."""
        if not self._done:
            self._mark_done()
            self._buffer.clear()
            await close_source(self._source)
            await self._end()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


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
