"""Streaming policy with the real openai SDK over httpx2.MockTransport, on the fake clock."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from netra_resilience import ResilienceContext, use_context
from netra_resilience.circuit_breaker import (
    CircuitBreakerOptions,
    CircuitBreakerStrategy,
)
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply, openai_alternate
from netra_resilience.llm import (
    LLM_BREAKER_FAILURE,
    FirstTokenTimeoutError,
    ResilientStream,
    StreamPolicy,
    StreamTruncatedError,
)
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    GOOD_STREAM,
    MESSAGES,
    Upstream,
    chunk,
    hang,
    parts_then,
    plain_client,
    sse_body,
    sse_event,
    sse_response,
)


def make_llm(
    clock: FakeClock,
    upstream: Upstream,
    *,
    attempts: int = 1,
    policy: StreamPolicy | None = None,
    **kwargs: Any,
) -> ResilientOpenAI:
    pipeline = standard_llm_pipeline(
        clock=clock,
        retry=RetryOptions(max_attempts=attempts, delay=1.0, use_jitter=False),
        circuit_breaker=CircuitBreakerOptions(
            minimum_throughput=100, sampling_duration=120, should_handle=LLM_BREAKER_FAILURE
        ),
        **kwargs,
    )
    return ResilientOpenAI(
        plain_client(upstream),
        pipeline,
        stream_policy=policy or StreamPolicy(first_token_timeout=10.0, idle_timeout=5.0),
    )


async def consume(stream: ResilientStream[Any]) -> tuple[list[str], BaseException | None]:
    texts: list[str] = []
    try:
        async for item in stream:
            if getattr(item, "choices", None):
                texts.append(item.choices[0].delta.content or "")
            else:
                texts.append(getattr(item, "type", "?"))
    except Exception as exc:
        return texts, exc
    return texts, None


async def stream_chat(
    llm: ResilientOpenAI, clock: FakeClock, ctx: ResilienceContext
) -> tuple[list[str], BaseException | None]:
    async def run() -> tuple[list[str], BaseException | None]:
        with use_context(ctx):
            stream = await llm.chat.completions.create(
                model="gpt-x", messages=MESSAGES, stream=True
            )
            assert isinstance(stream, ResilientStream)
            return await consume(stream)

    return await advance_until_done(clock, run())


async def test_a_complete_stream_passes_through(clock: FakeClock) -> None:
    upstream = Upstream(sse_response(sse_body(*GOOD_STREAM)))
    llm = make_llm(clock, upstream)
    ctx = ResilienceContext("s")
    texts, error = await stream_chat(llm, clock, ctx)
    assert (texts, error) == (["", "Hel", "lo"], None)
    assert not ctx.degradation
    assert upstream.bodies()[0]["stream"] is True


async def test_failure_before_the_first_token_falls_back(clock: FakeClock) -> None:
    primary = Upstream(httpx2.Response(503, json={"error": {"message": "overloaded"}}))
    backup = Upstream(sse_response(sse_body(chunk("from "), chunk("backup", finish="stop"))))
    alt = openai_alternate("backup", plain_client(backup), model="gpt-mini", clock=clock)
    llm = make_llm(clock, primary, alternates=[alt])
    ctx = ResilienceContext("s")
    texts, error = await stream_chat(llm, clock, ctx)
    assert (texts, error) == (["from ", "backup"], None)
    assert ctx.degradation.as_dict() == {"llm": "fallback"}
    assert backup.bodies()[0]["model"] == "gpt-mini"


async def test_a_cut_before_any_content_is_retried_not_truncated(clock: FakeClock) -> None:
    preamble_only = sse_response(
        parts_then([sse_event(chunk("", role="assistant"))], _raise_read_error)
    )
    upstream = Upstream(preamble_only, sse_response(sse_body(*GOOD_STREAM)))
    llm = make_llm(clock, upstream, attempts=2)
    ctx = ResilienceContext("s")
    texts, error = await stream_chat(llm, clock, ctx)
    assert (texts, error) == (["", "Hel", "lo"], None)  # the preamble is not delivered twice
    assert len(upstream.calls) == 2


async def _raise_read_error() -> None:
    raise httpx2.ReadError("connection reset by peer")


async def test_failure_after_the_first_token_is_a_truncation_signal(clock: FakeClock) -> None:
    cut = sse_response(
        parts_then(
            [sse_event(chunk("", role="assistant")), sse_event(chunk("Par"))], _raise_read_error
        )
    )
    primary = Upstream(cut)
    backup = Upstream(sse_response(sse_body(chunk("never", finish="stop"))))
    alt = openai_alternate("backup", plain_client(backup), clock=clock)
    llm = make_llm(clock, primary, attempts=3, alternates=[alt])
    breaker = llm.pipeline.find(CircuitBreakerStrategy)
    assert breaker is not None
    ctx = ResilienceContext("s")
    texts, error = await stream_chat(llm, clock, ctx)
    assert texts == ["", "Par"]
    assert isinstance(error, StreamTruncatedError)
    assert (error.reason, error.chunks, error.transient) == ("error", 2, False)
    assert len(primary.calls) == 1  # not retried: the caller already holds "Par"
    assert backup.calls == []  # nor replaced by a fallback
    assert ctx.degradation.as_dict() == {"llm": "stream_truncated"}
    health = breaker.health
    assert health.failures == 1  # the breaker saw the stream's real outcome


async def test_a_stream_that_ends_without_its_terminal_chunk_is_truncated(clock: FakeClock) -> None:
    # The body ends cleanly ([DONE] included) but no choice ever finished.
    upstream = Upstream(sse_response(sse_body(chunk("", role="assistant"), chunk("half"))))
    llm = make_llm(clock, upstream)
    texts, error = await stream_chat(llm, clock, ResilienceContext("s"))
    assert texts == ["", "half"]
    assert isinstance(error, StreamTruncatedError)
    assert error.reason == "incomplete"


async def test_an_error_event_mid_stream_is_a_truncation(clock: FakeClock) -> None:
    body = sse_body(
        chunk("", role="assistant"),
        chunk("one"),
        {"error": {"message": "server had an error", "type": "server_error"}},
    )
    llm = make_llm(clock, Upstream(sse_response(body)))
    texts, error = await stream_chat(llm, clock, ResilienceContext("s"))
    assert texts == ["", "one"]
    assert isinstance(error, StreamTruncatedError)
    assert error.chunks == 2


async def test_first_token_timeout_fires_on_the_fake_clock_and_is_retried(clock: FakeClock) -> None:
    def stalled(request: httpx2.Request) -> httpx2.Response:
        return sse_response(parts_then([sse_event(chunk("", role="assistant"))], hang))

    upstream = Upstream(stalled, sse_response(sse_body(*GOOD_STREAM)))
    llm = make_llm(
        clock, upstream, attempts=2, policy=StreamPolicy(first_token_timeout=8.0, idle_timeout=None)
    )
    start = clock.monotonic()
    texts, error = await stream_chat(llm, clock, ResilienceContext("s"))
    assert (texts, error) == (["", "Hel", "lo"], None)
    assert 8.0 in clock.timeouts
    assert clock.monotonic() - start == pytest.approx(8.0 + 1.0)  # TTFT, then one backoff
    assert len(upstream.calls) == 2

    upstream.script(stalled)
    with use_context(ResilienceContext("s")), pytest.raises(FirstTokenTimeoutError):
        await advance_until_done(
            clock,
            llm.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True),
        )


async def test_idle_timeout_fires_on_the_fake_clock_and_truncates(clock: FakeClock) -> None:
    stalls = sse_response(
        parts_then([sse_event(chunk("", role="assistant")), sse_event(chunk("a"))], hang)
    )
    llm = make_llm(
        clock, Upstream(stalls), policy=StreamPolicy(first_token_timeout=30.0, idle_timeout=4.0)
    )
    ctx = ResilienceContext("s")
    start = clock.monotonic()
    texts, error = await stream_chat(llm, clock, ctx)
    assert texts == ["", "a"]
    assert isinstance(error, StreamTruncatedError)
    assert (error.reason, error.chunks) == ("idle_timeout", 2)
    assert clock.monotonic() - start == pytest.approx(4.0)
    assert ctx.degradation.reason("llm") == "stream_truncated"


async def test_streams_are_never_cached(clock: FakeClock) -> None:
    upstream = Upstream(sse_response(sse_body(*GOOD_STREAM)))
    llm = make_llm(clock, upstream, cache=AiocacheBackend())
    texts, _ = await stream_chat(llm, clock, ResilienceContext("s", user_id="u"))
    assert texts == ["", "Hel", "lo"]
    upstream.script(httpx2.Response(500, json={}))
    with use_context(ResilienceContext("s", user_id="u")), pytest.raises(Exception) as caught:
        await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
        )
    assert "500" in str(caught.value)


async def test_canned_reply_for_a_stream_is_a_complete_stream(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(500, json={}))
    llm = make_llm(clock, upstream, canned_reply=canned_reply("Busy, try again.", clock=clock))
    ctx = ResilienceContext("s")
    texts, error = await stream_chat(llm, clock, ctx)
    assert (texts, error) == (["Busy, try again."], None)
    assert ctx.degradation.as_dict() == {"llm": "canned_reply"}


def responses_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": fields.pop("seq", 0), **fields}


RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "model": "gpt-x",
    "status": "in_progress",
    "output": [],
    "parallel_tool_calls": False,
    "tool_choice": "auto",
    "tools": [],
}


def text_delta(text: str, seq: int) -> dict[str, Any]:
    return responses_event(
        "response.output_text.delta",
        seq=seq,
        delta=text,
        item_id="msg_1",
        output_index=0,
        content_index=0,
        logprobs=[],
    )


async def test_responses_api_stream_complete_and_cut(clock: FakeClock) -> None:
    created = responses_event("response.created", response=RESPONSE)
    done = responses_event(
        "response.completed", seq=3, response={**RESPONSE, "status": "completed"}
    )
    full = b"".join(sse_event(e) for e in (created, text_delta("hi", 1), text_delta("!", 2), done))
    cut = parts_then([sse_event(created), sse_event(text_delta("hi", 1))], _raise_read_error)
    upstream = Upstream(sse_response(full), sse_response(cut))
    llm = make_llm(clock, upstream)

    async def run() -> tuple[list[str], BaseException | None]:
        with use_context(ResilienceContext("r")):
            stream = await llm.responses.create(model="gpt-x", input="hi", stream=True)
            return await consume(stream)

    texts, error = await advance_until_done(clock, run())
    assert error is None
    assert texts == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.completed",
    ]
    texts, error = await advance_until_done(clock, run())
    assert texts == ["response.created", "response.output_text.delta"]
    assert isinstance(error, StreamTruncatedError)
    assert json.loads(upstream.calls[0].content)["stream"] is True


async def test_leaving_a_stream_early_closes_it_without_truncation(clock: FakeClock) -> None:
    upstream = Upstream(sse_response(parts_then([sse_body(*GOOD_STREAM, done=False)], hang)))
    llm = make_llm(clock, upstream)
    ctx = ResilienceContext("s")

    async def run() -> ResilientStream[Any]:
        with use_context(ctx):
            stream: ResilientStream[Any] = await llm.chat.completions.create(
                model="gpt-x", messages=MESSAGES, stream=True
            )
            async with stream:
                async for _ in stream:
                    break
            return stream

    stream = await advance_until_done(clock, run())
    assert stream.truncation is None
    assert not ctx.degradation
    assert stream.source.response.is_closed
