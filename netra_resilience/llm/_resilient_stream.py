"""The stream handed to the caller once its first answer chunk arrived: it enforces the idle
limit and turns any early end into :class:`StreamTruncatedError`, never a clean end."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Generic, Self, TypeVar

from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.llm._errors import StreamIdleTimeoutError, StreamTruncatedError
from netra_resilience.llm._stream_policy import TRUNCATED, OnTruncated, close_source, timer_expired
from netra_resilience.llm._trackers import StreamTracker

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
        self._ended = ended
        self._done = False
        self._delivered = 0
        self.truncation: StreamTruncatedError | None = None

    @property
    def source(self) -> Any:
        """The underlying stream (e.g. openai's ``AsyncStream``; its ``.response`` headers)."""
        return self._source

    @property
    def chunks_delivered(self) -> int:
        return self._delivered

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
        return error

    async def aclose(self) -> None:
        """Stop early: close the underlying stream (not a truncation: the caller chose it)."""
        if not self._done:
            self._done = True
            self._buffer.clear()
            await close_source(self._source)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
