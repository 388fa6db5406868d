"""A stream's idle limit on one lazily re-armed timer, and chunk fields read once per type."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from netra_resilience import ResilienceContext
from netra_resilience.clock import Cancellable
from netra_resilience.llm import (
    MeteredTracker,
    ResilientStream,
    StreamPolicy,
    StreamTruncatedError,
    open_stream,
    tracker_for,
)
from netra_resilience.llm._request import StreamIdleTimeoutError
from netra_resilience.testing import FakeClock, advance_until_done


def chunk(content: str | None, finish: str | None = None, **extra: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
            **extra,
        }
    )


ROLE = ChatCompletionChunk.model_validate(
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
    }
)


class CountingClock(FakeClock):
    """A fake clock that counts the timers armed through ``call_later``."""

    def __init__(self) -> None:
        super().__init__()
        self.timers = 0

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Any:
        self.timers += 1
        return super().call_later(seconds, callback)


def paced(clock: FakeClock, *steps: tuple[float, Any]) -> AsyncIterator[Any]:
    """Yield each item after its delay on the fake clock."""

    async def run() -> AsyncIterator[Any]:
        for delay, item in steps:
            if delay:
                await clock.sleep(delay)
            yield item

    return run()


async def opened(
    clock: FakeClock, source: AsyncIterator[Any], *, ttft: float | None = 30.0, idle: float = 5.0
) -> ResilientStream[Any]:
    async def start() -> AsyncIterator[Any]:
        return source

    return await open_stream(
        start,
        policy=StreamPolicy(first_token_timeout=ttft, idle_timeout=idle),
        clock=clock,
        tracker=MeteredTracker(tracker_for("chat")),
        context=ResilienceContext("s"),
    )


async def drain(stream: ResilientStream[Any]) -> tuple[int, BaseException | None]:
    seen = 0
    try:
        async for _ in stream:
            seen += 1
    except StreamTruncatedError as exc:
        return seen, exc
    return seen, None


async def test_one_timer_for_a_whole_steady_stream_not_one_per_chunk() -> None:
    clock = CountingClock()
    steps = [(0.0, chunk("a"))] + [(0.1, chunk("t"))] * 200 + [(0.1, chunk(None, "stop"))]

    async def run() -> tuple[int, BaseException | None]:
        return await drain(await opened(clock, paced(clock, *steps), idle=5.0))

    assert await advance_until_done(clock, run()) == (202, None)
    # 20 s of stream under a 5 s limit: the first arm and one re-arm per limit, not 201.
    assert clock.timers <= 1 + 20.1 / 5.0
    assert clock.timeouts == [30.0]  # the first-token timeout only: none per chunk
    assert clock.pending == 0  # the ended stream released its timer


async def test_the_real_loop_arms_no_timer_handle_per_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)

    async def handles_for(n: int) -> int:
        armed.clear()

        async def source() -> AsyncIterator[Any]:
            for _ in range(n - 1):
                yield chunk("t")
            yield chunk(None, "stop")

        async def start() -> AsyncIterator[Any]:
            return source()

        stream = await open_stream(
            start, policy=StreamPolicy(), tracker=MeteredTracker(tracker_for("chat"))
        )
        async for _ in stream:
            pass
        assert stream.completed
        return len(armed)

    few, many = await handles_for(3), await handles_for(500)
    assert few == many <= 2  # the first-token timeout and the one idle timer


async def test_expiry_rechecks_when_the_wait_began_then_cuts_a_real_silence() -> None:
    clock = CountingClock()
    steps = [(0.0, chunk("a")), (3.0, chunk("b")), (3.0, chunk("c")), (3.0, chunk("d"))]
    steps += [(7.0, chunk(None, "stop"))]  # 7 s of silence under a 5 s limit
    ctx = ResilienceContext("s")

    async def run() -> tuple[int, BaseException | None, float]:
        async def start() -> AsyncIterator[Any]:
            return paced(clock, *steps)

        stream = await open_stream(
            start,
            policy=StreamPolicy(idle_timeout=5.0),
            clock=clock,
            tracker=tracker_for("chat"),
            context=ctx,
        )
        begun = clock.monotonic()
        seen, error = await drain(stream)
        return seen, error, clock.monotonic() - begun

    seen, error, elapsed = await advance_until_done(clock, run())
    assert seen == 4  # 3 s gaps pass although the timer armed at 0 s expired at 5 s and 8 s
    assert isinstance(error, StreamTruncatedError)
    assert (error.reason, error.chunks) == ("idle_timeout", 4)
    assert isinstance(error.__cause__, StreamIdleTimeoutError)
    assert elapsed == pytest.approx(9.0 + 5.0)  # cut 5 s into the silence, not later
    assert ctx.degradation.reason("llm") == "stream_truncated"
    assert clock.timers == 4  # armed at 0, re-armed at 5 and 8 (for 11), then at 14 it cut
    assert clock.pending == 0


async def test_first_token_limit_covers_the_open_and_idle_the_gaps_after_it() -> None:
    clock = FakeClock()
    # 8 s to the first answer chunk: within the 10 s first-token limit though over idle's 2.
    steps = [(0.0, ROLE), (8.0, chunk("a")), (1.5, chunk("b")), (1.5, chunk(None, "stop"))]

    async def run() -> tuple[int, BaseException | None]:
        return await drain(await opened(clock, paced(clock, *steps), ttft=10.0, idle=2.0))

    assert await advance_until_done(clock, run()) == (4, None)

    cut = [(0.0, ROLE), (1.0, chunk("a")), (3.0, chunk(None, "stop"))]

    async def run_cut() -> tuple[int, BaseException | None]:
        return await drain(await opened(clock, paced(clock, *cut), ttft=10.0, idle=2.0))

    seen, error = await advance_until_done(clock, run_cut())
    assert seen == 2
    assert isinstance(error, StreamTruncatedError)
    assert error.reason == "idle_timeout"


async def test_a_callers_cancel_stays_a_cancel_and_releases_the_timer() -> None:
    clock = FakeClock()
    stream = await opened(clock, paced(clock, (0.0, chunk("a")), (100.0, chunk("b"))))

    async def read() -> None:
        async for _ in stream:
            pass

    task = asyncio.ensure_future(read())
    await clock.advance(1.0)  # waiting for "b": the idle timer is armed
    assert clock.pending == 2  # the source's sleep and the idle timer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.truncation is None  # the caller's cancel is no truncation
    assert clock.pending == 0  # neither the source's sleep nor the idle timer remains


async def test_closing_early_releases_the_timer() -> None:
    clock = FakeClock()
    steps = [(0.0, chunk("a")), (1.0, chunk("b")), (1.0, chunk(None, "stop"))]
    stream = await opened(clock, paced(clock, *steps))

    async def two() -> None:
        await stream.__anext__()
        await stream.__anext__()

    await advance_until_done(clock, two())
    await stream.aclose()
    assert clock.pending == 0
    assert not stream.completed and stream.truncation is None


async def test_a_source_that_swallows_the_idle_cancel_leaves_no_cancel_behind() -> None:
    clock = FakeClock()

    async def stubborn() -> AsyncIterator[Any]:
        yield chunk("a")
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: a chunk still comes
            await clock.sleep(10.0)
        yield chunk(None, "stop")

    async def run() -> tuple[int, BaseException | None, int]:
        stream = await opened(clock, stubborn(), idle=5.0)
        seen, error = await drain(stream)
        task = asyncio.current_task()
        assert task is not None
        return seen, error, task.cancelling()

    # As with asyncio.timeout: no TimeoutError when the cancel never surfaced.
    assert await advance_until_done(clock, run()) == (2, None, 0)


class TimerlessClock:
    """A clock without ``call_later``: streams fall back to a timeout per chunk."""

    def __init__(self, inner: FakeClock) -> None:
        self.inner = inner

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def now(self) -> datetime:
        return self.inner.now()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[Any]:
        return self.inner.timeout(seconds)


async def test_a_clock_without_timers_bounds_each_wait_with_its_own_timeout() -> None:
    fake = FakeClock()
    clock = TimerlessClock(fake)
    steps = [(0.0, chunk("a")), (1.0, chunk("b")), (9.0, chunk(None, "stop"))]

    async def run() -> tuple[int, BaseException | None]:
        async def start() -> AsyncIterator[Any]:
            return paced(fake, *steps)

        stream = await open_stream(
            start,
            policy=StreamPolicy(first_token_timeout=None, idle_timeout=4.0),
            clock=clock,
            tracker=tracker_for("chat"),
        )
        return await drain(stream)

    seen, error = await advance_until_done(fake, run())
    assert seen == 2
    assert isinstance(error, StreamTruncatedError)
    assert error.reason == "idle_timeout"
    assert isinstance(error.__cause__, StreamIdleTimeoutError)
    assert fake.timeouts == [4.0, 4.0]  # one per wait


def test_a_handle_is_anything_with_cancel() -> None:
    clock = FakeClock()
    handle: Cancellable = clock.call_later(1.0, lambda: None)
    handle.cancel()
    assert clock.pending == 0


def tokens(meter: MeteredTracker) -> tuple[int, int] | None:
    usage = meter.usage
    return None if usage is None else (usage.input_tokens, usage.output_tokens)


async def test_chunk_fields_for_models_dicts_and_malformed_models() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    meter = MeteredTracker(tracker_for("chat"))
    meter.observe(chunk("a"))
    assert (meter.complete, tokens(meter)) == (False, None)
    meter.observe(chunk(None, "stop"))
    meter.observe(ChatCompletionChunk.model_validate({**chunk(None).model_dump(), "choices": []}))
    assert tokens(meter) is None
    meter.observe(chunk(None, usage=usage).model_copy(update={"choices": []}))
    assert meter.complete
    assert tokens(meter) == (3, 2)

    # Plain JSON dicts, as a raw SSE source yields them.
    plain = MeteredTracker(tracker_for("chat"))
    plain.observe({"choices": [{"index": 0, "finish_reason": None}]})
    plain.observe({"choices": [{"index": 0, "finish_reason": "stop"}], "usage": usage})
    assert plain.complete and tokens(plain) == (3, 2)

    # A model built without its declared fields (malformed upstream data) reads as absent.
    broken = ChatCompletionChunk.model_construct(id="c")
    choiceless = tracker_for("chat")
    choiceless.observe(broken)
    assert not choiceless.complete

    # An error the provider put on a chunk (an undeclared field) is still seen.
    with pytest.raises(Exception, match="error chunk"):
        tracker_for("chat").observe(chunk("a", error={"message": "overloaded"}))
