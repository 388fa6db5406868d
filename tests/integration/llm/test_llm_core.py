"""The framework-free LLM pieces on their own: classification, keys, answers, streams, chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from netra_resilience import (
    BrokenCircuitError,
    PipelineBuilder,
    ResilienceContext,
    TimeoutRejectedError,
)
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitBreakerStrategy
from netra_resilience.fallback import FallbackArgs, FallbackOptions
from netra_resilience.integrations.http._common import UpstreamStatusError
from netra_resilience.llm import (
    LLM_DEPENDENCY_FAILURE,
    Alternate,
    ChatStreamTracker,
    DegradedAnswers,
    FallbackChain,
    FirstTokenTimeoutError,
    LlmRequest,
    ResponsesStreamTracker,
    StreamPolicy,
    StreamTruncatedError,
    answer_cache_filter,
    is_complete_answer,
    is_transient_failure,
    llm_cache_key,
    llm_retry_after,
    make_llm_cache_key,
    open_stream,
    report_failure,
)
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import chunk, completion, hang


class FakeResponse:
    def __init__(self, **headers: str) -> None:
        self.headers = headers


class StatusError(Exception):
    def __init__(self, status: int, **headers: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.response = FakeResponse(**headers)


class APIConnectionError(Exception):  # same name as the SDKs' class, nothing imported
    pass


def test_transient_classification_is_duck_typed() -> None:
    transient = [
        StatusError(429),
        StatusError(503),
        StatusError(408),
        StatusError(409),
        StatusError(400, **{"x-should-retry": "true"}),
        APIConnectionError(),
        ConnectionResetError(),
        TimeoutRejectedError(),
        json.JSONDecodeError("x", "{", 0),
        UpstreamStatusError(502),
        StreamTruncatedError(reason="incomplete", chunks=0),
    ]
    permanent = [
        StatusError(400),
        StatusError(404),
        StatusError(500, **{"x-should-retry": "false"}),
        BrokenCircuitError(),
        ValueError("bug"),
        StreamTruncatedError(reason="error", chunks=3),
    ]
    assert all(is_transient_failure(e) for e in transient)
    assert not any(is_transient_failure(e) for e in permanent)
    assert LLM_DEPENDENCY_FAILURE(Outcome(None, BrokenCircuitError()))
    assert LLM_DEPENDENCY_FAILURE(Outcome(None, StreamTruncatedError(reason="error", chunks=3)))
    assert not LLM_DEPENDENCY_FAILURE(Outcome(None, StatusError(401)))
    assert not LLM_DEPENDENCY_FAILURE(Outcome("fine"))


def test_retry_after_hint_reads_attributes_then_headers(clock: FakeClock) -> None:
    hint = llm_retry_after(clock)
    assert hint(Outcome(None, UpstreamStatusError(429, retry_after=3.0))) == 3.0
    assert hint(Outcome(None, StatusError(429, **{"retry-after-ms": "40"}))) == 0.04
    assert hint(Outcome(None, StatusError(503, **{"retry-after": "9"}))) == 9.0
    assert hint(Outcome(None, BrokenCircuitError(retry_after=5.0))) is None  # ours, no hint
    assert hint(Outcome(None, StatusError(503))) is None


def test_cache_key_ignores_only_non_output_params() -> None:
    ctx = ResilienceContext("k")
    base = {"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": 0}

    def key(**params: Any) -> str | None:
        return llm_cache_key(ctx, (LlmRequest("chat", params),), {})

    assert key(**base) == key(**base, timeout=5, user="x", store=True, extra_headers={"a": "b"})
    assert key(**base) == key(**{**base, "temperature": 0.0})
    assert key(**base) != key(**base, logit_bias={"1": 5})  # unknown/new fields count
    assert key(**base) != key(**base, parallel_tool_calls=False)
    assert key(**base, stream=True) is None  # streams bypass the cache
    assert make_llm_cache_key(cache_streams=True)(
        ctx, (LlmRequest("chat", {**base, "stream": True}),), {}
    )
    assert key(**base) != llm_cache_key(ctx, (LlmRequest("responses", base),), {})
    # A plain pipeline.execute(create, **params) is keyed on its keyword arguments.
    assert llm_cache_key(ctx, (), dict(base)) is not None


def test_answers_worth_caching() -> None:
    from openai.types.chat import ChatCompletion

    good = ChatCompletion.construct(**completion("fine"))
    refused = ChatCompletion.construct(**completion(None, message={"refusal": "no"}))  # type: ignore[arg-type]
    filtered = ChatCompletion.construct(**completion("x", finish_reason="content_filter"))
    assert is_complete_answer(good)
    assert is_complete_answer(completion("plain dict"))
    assert not any(is_complete_answer(a) for a in (refused, filtered, None, ValueError()))
    assert not is_complete_answer({"object": "response", "status": "failed", "output": []})
    assert not is_complete_answer(
        {
            "object": "response",
            "status": "completed",
            "output": [{"content": [{"type": "refusal"}]}],
        }
    )
    degraded = DegradedAnswers()
    should_cache = answer_cache_filter(degraded)
    canned = {"choices": [{"message": {"content": "busy"}}]}  # a dict: not weak-referenceable
    degraded.add(good)
    degraded.add(canned)
    assert not should_cache(good)
    assert not should_cache(canned)
    assert should_cache(ChatCompletion.construct(**completion("another")))


def complete(tracker: ChatStreamTracker | ResponsesStreamTracker) -> bool:
    return tracker.complete


def test_trackers_know_complete_from_cut() -> None:
    chat = ChatStreamTracker()
    assert chat.is_preamble(chunk("", role="assistant"))
    for item in (chunk("", role="assistant"), chunk("a")):
        chat.observe(item)
    assert not complete(chat)
    chat.observe(chunk(None, finish="stop"))
    assert complete(chat)

    responses = ResponsesStreamTracker()
    assert responses.is_preamble({"type": "response.created"})
    responses.observe({"type": "response.output_text.delta"})
    assert not complete(responses)
    with pytest.raises(Exception, match=r"response\.failed"):
        responses.observe({"type": "response.failed"})


async def gen(*items: Any, end: Any = None) -> AsyncIterator[Any]:
    for item in items:
        yield item
    if end is not None:
        await end()


async def test_open_stream_buffers_the_preamble_and_times_out_on_the_clock(
    clock: FakeClock,
) -> None:
    async def start() -> AsyncIterator[Any]:
        return gen(chunk("", role="assistant"), end=hang)

    with pytest.raises(FirstTokenTimeoutError):
        await advance_until_done(
            clock,
            open_stream(
                start,
                policy=StreamPolicy(first_token_timeout=3.0),
                clock=clock,
                tracker=ChatStreamTracker(),
            ),
        )
    assert clock.timeouts == [3.0]

    async def empty() -> AsyncIterator[Any]:
        return gen()

    with pytest.raises(StreamTruncatedError) as caught:
        await open_stream(empty, policy=StreamPolicy(), clock=clock, tracker=ChatStreamTracker())
    assert caught.value.transient  # nothing delivered yet: retryable


async def test_late_failures_reach_the_breaker_but_not_an_open_one(clock: FakeClock) -> None:
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_circuit_breaker(CircuitBreakerOptions(minimum_throughput=2, failure_ratio=0.5))
        .build()
    )
    breaker = pipeline.find(CircuitBreakerStrategy)
    assert breaker is not None
    error = StreamTruncatedError(reason="error", chunks=2)
    ctx = ResilienceContext("op")
    await report_failure(pipeline, error, ctx)
    await report_failure(pipeline, error, ctx)
    assert breaker.state == "open"
    await report_failure(pipeline, error, ctx)  # ignored while open
    assert not ctx.degradation  # the replay never marks the caller's request
    await report_failure(None, error)  # no pipeline, nothing to do


async def test_chain_without_alternates_declines_and_a_raising_canned_reply_fails(
    clock: FakeClock,
) -> None:
    failure: Outcome[Any] = Outcome(None, ConnectionError("down"))
    ctx = ResilienceContext("op")
    assert await FallbackChain()(FallbackArgs(failure, ctx)) is failure

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("alternate down too")

    chain = FallbackChain([Alternate(name="alt", call=broken)], dependency="llm")
    assert await chain(FallbackArgs(failure, ctx)) is failure
    assert ctx.degradation.as_dict() == {"alt": "error"}

    def canned(args: FallbackArgs) -> str:
        raise RuntimeError("template missing")

    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_fallback(FallbackOptions(action=FallbackChain(canned_reply=canned)))
        .build()
    )

    async def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(RuntimeError, match="template"):
        await pipeline.execute(down)


def test_invalid_stream_policy() -> None:
    from netra_resilience import InvalidOptionsError

    with pytest.raises(InvalidOptionsError, match=r"StreamPolicy\.idle_timeout"):
        StreamPolicy(idle_timeout=-1)
    with pytest.raises(TypeError):
        FallbackChain(["not an alternate"])  # type: ignore[list-item]
