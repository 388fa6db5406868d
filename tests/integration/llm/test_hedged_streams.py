"""Hedging an LLM stream (the real openai SDK over httpx2.MockTransport, on the fake clock): a
hedge starts only while no answer chunk has arrived; the first stream to answer wins and the
other is cancelled and closed, its outcome recorded; after the first token there is no hedge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2

from netra_resilience import ResilienceContext, use_context
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.hedging import HedgingOptions, HedgingStrategy
from netra_resilience.integrations.openai import ResilientOpenAI
from netra_resilience.llm import LLM_BREAKER_FAILURE, ResilientStream, StreamPolicy
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from tests.integration.llm.helpers import (
    GOOD_STREAM,
    MESSAGES,
    Upstream,
    chunk,
    plain_client,
    sse_event,
)


class PacedStream(httpx2.AsyncByteStream):
    """SSE events, each after its pause on the fake clock; remembers being closed."""

    def __init__(self, clock: FakeClock, events: list[tuple[float, dict[str, Any] | str]]):
        self.clock = clock
        self.events = events
        self.closed = False
        self.sent = 0
        self._body = self._paced()  # one body: a second iteration continues, never restarts

    async def _paced(self) -> AsyncIterator[bytes]:
        for pause, event in self.events:
            if pause:
                await self.clock.sleep(pause)
            self.sent += 1
            yield sse_event(event)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._body:
            yield part

    async def aclose(self) -> None:
        self.closed = True


def respond(stream: PacedStream) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def make_llm(
    clock: FakeClock, upstream: Upstream, listener: RecordingListener
) -> tuple[ResilientOpenAI, HedgingStrategy]:
    pipeline = standard_llm_pipeline(
        clock=clock,
        telemetry=listener,
        retry=RetryOptions(max_attempts=1),
        circuit_breaker=CircuitBreakerOptions(
            minimum_throughput=100, sampling_duration=120, should_handle=LLM_BREAKER_FAILURE
        ),
        hedging=HedgingOptions(delay=2.0),
    )
    hedging = pipeline.find(HedgingStrategy)
    assert hedging is not None
    policy = StreamPolicy(first_token_timeout=30.0, idle_timeout=10.0)
    return ResilientOpenAI(plain_client(upstream), pipeline, stream_policy=policy), hedging


async def read_all(llm: ResilientOpenAI, clock: FakeClock) -> list[str]:
    async def run() -> list[str]:
        with use_context(ResilienceContext("s")):
            stream = await llm.chat.completions.create(
                model="gpt-x", messages=MESSAGES, stream=True
            )
            assert isinstance(stream, ResilientStream)
            return [item.choices[0].delta.content or "" async for item in stream]

    return await advance_until_done(clock, run())


async def test_a_slow_first_token_is_hedged_and_the_loser_closed(clock: FakeClock) -> None:
    listener = RecordingListener()
    # The primary opens (a role chunk) but its first answer chunk is 10 s away.
    slow = PacedStream(clock, [(0, chunk("", role="assistant")), (10.0, chunk("late"))])
    fast = PacedStream(clock, [*((0.5, c) for c in GOOD_STREAM), (0, "[DONE]")])
    upstream = Upstream(respond(slow), respond(fast))
    llm, hedging = make_llm(clock, upstream, listener)
    start = clock.monotonic()
    assert await read_all(llm, clock) == ["", "Hel", "lo"]
    # Hedged after 2 s without an answer chunk; the hedge answered 1 s later.
    assert len(upstream.calls) == 2
    assert clock.monotonic() - start == 2.0 + 1.5
    assert (hedging.hedges, hedging.hedge_wins) == (1, 1)
    assert slow.closed and slow.sent == 1  # cancelled before its first token, and closed
    assert [e.args["attempt"] for e in listener.named("hedge_cancelled")] == [0]
    assert clock.pending == 0  # no timer of the loser (first-token, hedge delay) is left


async def test_no_hedge_once_the_first_token_arrived(clock: FakeClock) -> None:
    listener = RecordingListener()
    # The answer starts at once and then pauses 5 s: past the hedge delay, but a stream that
    # has answered is the caller's (its idle timeout applies), never repeated.
    events: list[tuple[float, dict[str, Any] | str]] = [
        (0, chunk("", role="assistant")),
        (0, chunk("Hel")),
        (5.0, chunk("lo", finish="stop")),
        (0, "[DONE]"),
    ]
    paused = PacedStream(clock, events)
    upstream = Upstream(respond(paused))
    llm, hedging = make_llm(clock, upstream, listener)
    assert await read_all(llm, clock) == ["", "Hel", "lo"]
    assert len(upstream.calls) == 1
    assert hedging.hedges == 0 and not listener.named("hedge")
