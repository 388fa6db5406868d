"""The anthropic adapter with the real ``anthropic`` package: a fake Anthropic-compatible
provider (a real loopback server for the agent loop, ``httpx2.MockTransport`` elsewhere), no
key, no network, time on the fake clock."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import beta_async_tool
from anthropic._base_client import get_platform

from netra_resilience import (
    BrokenCircuitError,
    InvalidOptionsError,
    RateLimitRejectedError,
    Resilience,
    ResilienceContext,
    use_context,
)
from netra_resilience.circuit_breaker import CircuitState
from netra_resilience.engine import RunStatus
from netra_resilience.integrations.anthropic import (
    ANTHROPIC_TRANSIENT,
    AnthropicEngine,
    ResilientAnthropic,
    anthropic_alternate,
    anthropic_chat_alternate,
    canned_message,
    decode_answer,
    encode_answer,
    is_anthropic_transient,
    make_resilient,
    openai_messages_alternate,
    resilient_async_anthropic,
)
from netra_resilience.integrations.openai import ResilientOpenAI
from netra_resilience.llm import (
    StreamTruncatedError,
    failure_class,
    llm_cache_key,
    standard_llm_pipeline,
)
from netra_resilience.llm._request import LlmRequest
from netra_resilience.outcome import Outcome
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.agents.provider import (
    ANTHROPIC_URL,
    FAKE_KEY,
    TOOL_RUN_EVENTS,
    FakeProvider,
    Recorder,
    anthropic_client,
    sdk_client,
)
from tests.integration.llm.helpers import Upstream, http_pipeline, parts_then, sse_response

pytestmark = pytest.mark.timeout(30)

ASK: dict[str, Any] = {
    "model": "claude-x",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello"}],
}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def message(text: str = "hi", stop: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 5},
    }


def error(status: int, kind: str, text: str = "no", **headers: str) -> httpx2.Response:
    body = {"type": "error", "error": {"type": kind, "message": text}}
    return httpx2.Response(status, json=body, headers=headers)


def client_on(upstream: Upstream) -> anthropic.AsyncAnthropic:
    http = httpx2.AsyncClient(transport=upstream.transport())
    client = anthropic.AsyncAnthropic(
        api_key=FAKE_KEY, base_url=ANTHROPIC_URL, http_client=http, max_retries=0
    )
    client._platform = get_platform()  # skip the SDK's threaded platform probe
    return client


def events_body(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {"type": "message_start", "message": {**message(), "content": []}}
BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


def delta(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


END = (
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    },
    {"type": "message_stop"},
)


def breaker_of(llm: ResilientAnthropic) -> Any:
    return next(s for s in llm.pipeline.strategies if s.kind == "circuit_breaker")


async def ask(clock: FakeClock, llm: ResilientAnthropic, **params: Any) -> Any:
    with use_context(ResilienceContext("chat")):
        return await advance_until_done(clock, llm.messages.create(**{**ASK, **params}))


# -- the agent loop --------------------------------------------------------------------------


async def test_agent_loop_over_a_real_loopback_server(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Paris"}}
    cities: list[str] = []

    @beta_async_tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        cities.append(city)
        return f"sunny in {city}"

    async with provider.serve() as root:
        resilience = Resilience(clock=clock)
        client = anthropic_client(provider, root)
        # no timers armed: the fake clock would jump to them while real I/O is in flight
        pipeline = resilience.llm(attempt_timeout=None, total_timeout=None)
        run = AnthropicEngine(
            ResilientAnthropic(client, pipeline), model="claude-x", tools=[get_weather]
        )
        engine = resilience.engine(run, tools=run.tools(get_weather={"effect": "read"}))
        sink = Recorder()
        result = await advance_until_done(clock, engine.run("Weather in Paris?", sink))
        await client.close()
        await resilience.aclose()
    assert result.status is RunStatus.OK, (result.degradation, sink.events)
    assert result.output == "Tool said: sunny in Paris"
    assert cities == ["Paris"]
    assert provider.paths == ["/v1/messages"] * 2
    assert provider.requests[0]["tools"][0]["name"] == "get_weather"
    assert provider.requests[0]["tools"][0]["input_schema"]["required"] == ["city"]
    tool_result = provider.requests[1]["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert tool_result["content"] == "sunny in Paris"
    assert sink.types == TOOL_RUN_EVENTS
    assert sink.events[2]["data"]["call_id"] == tool_result["tool_use_id"]


async def test_a_failing_tool_is_an_error_result_the_model_reads(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.tool_calls = {"lookup": {"term": "netra"}}

    @beta_async_tool
    async def lookup(term: str) -> str:
        """Look a term up."""
        raise ConnectionError("lookup.internal refused")

    resilience = Resilience(clock=clock)
    run = AnthropicEngine(
        ResilientAnthropic(anthropic_client(provider), resilience.llm()),
        model="claude-x",
        tools=[lookup],
    )
    engine = resilience.engine(run, tools=run.tools(lookup={"effect": "read", "max_attempts": 2}))
    result = await advance_until_done(clock, engine.run("what is netra?"))
    sent = provider.requests[1]["messages"][-1]["content"][0]
    assert sent["is_error"] is True
    assert json.loads(sent["content"])["error"] == "failed"
    assert "lookup.internal" not in sent["content"]  # the exception's text never reaches it
    assert result.status is RunStatus.DEGRADED
    assert str(result.output).startswith("Tool said: ")


def test_engine_options_are_checked_at_construction(clock: FakeClock) -> None:
    llm = ResilientAnthropic(anthropic_client(FakeProvider()), standard_llm_pipeline(clock=clock))
    with pytest.raises(InvalidOptionsError, match="max_turns"):
        AnthropicEngine(llm, model="claude-x", max_turns=0)
    with pytest.raises(InvalidOptionsError, match="tools"):
        AnthropicEngine(llm, model="claude-x", tools=[print])
    with pytest.raises(InvalidOptionsError, match="nope"):
        AnthropicEngine(llm, model="claude-x").tools(nope={})
    with pytest.raises(InvalidOptionsError, match="client"):
        ResilientAnthropic(object(), standard_llm_pipeline(clock=clock))  # type: ignore[arg-type]


# -- classification --------------------------------------------------------------------------


async def test_529_overloaded_is_retried_after_its_retry_after(clock: FakeClock) -> None:
    upstream = Upstream(error(529, "overloaded_error", **{"retry-after": "7"}), message("ok"))
    llm = ResilientAnthropic(client_on(upstream), http_pipeline(clock))
    started = clock.monotonic()
    reply = await ask(clock, llm)
    assert reply.content[0].text == "ok"
    assert len(upstream.calls) == 2
    assert clock.monotonic() - started == pytest.approx(7.0)  # the server's delay, not ours


async def test_529s_open_the_breaker(clock: FakeClock) -> None:
    upstream = Upstream(error(529, "overloaded_error"))
    llm = ResilientAnthropic(client_on(upstream), http_pipeline(clock, attempts=1))
    for _ in range(4):
        with pytest.raises(anthropic.APIStatusError) as failed:  # OverloadedError
            await ask(clock, llm)
        assert failed.value.status_code == 529
    assert breaker_of(llm).state is CircuitState.OPEN
    with pytest.raises(BrokenCircuitError):
        await ask(clock, llm)
    assert len(upstream.calls) == 4


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error")],
)
async def test_caller_errors_are_neither_retried_nor_counted(
    clock: FakeClock, status: int, kind: str
) -> None:
    upstream = Upstream(error(status, kind))
    llm = ResilientAnthropic(client_on(upstream), http_pipeline(clock, minimum_throughput=2))
    for _ in range(3):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await ask(clock, llm)
        assert caught.value.status_code == status
        assert not is_anthropic_transient(caught.value)
    assert len(upstream.calls) == 3  # one attempt each
    assert breaker_of(llm).state is CircuitState.CLOSED


async def test_a_spent_rate_limit_pauses_the_next_call(clock: FakeClock) -> None:
    reset = (clock.now() + timedelta(seconds=5)).astimezone(UTC).isoformat()
    spent = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
    }
    upstream = Upstream(httpx2.Response(200, json=message("ok"), headers=spent))
    pipeline = standard_llm_pipeline(clock=clock, retry=RetryOptions(max_attempts=1), cache=None)
    llm = ResilientAnthropic(client_on(upstream), pipeline)
    assert (await ask(clock, llm)).content[0].text == "ok"
    with pytest.raises(RateLimitRejectedError):
        await ask(clock, llm)  # refused before the provider's 429: nothing sent
    assert len(upstream.calls) == 1
    await clock.advance(5.0)
    upstream.script(message("again"))
    assert (await ask(clock, llm)).content[0].text == "again"


def test_failure_classes_of_anthropic_answers() -> None:
    request = httpx2.Request("POST", f"{ANTHROPIC_URL}/v1/messages")
    too_long = httpx2.Response(
        400,
        json={"error": {"type": "invalid_request_error", "message": "prompt is too long: 9 > 8"}},
        request=request,
    )
    overflow = anthropic.BadRequestError("x", response=too_long, body=json.loads(too_long.content))
    assert failure_class(Outcome(None, overflow)) == "context_window_exceeded"
    refused = anthropic.types.Message.model_validate(message("", stop="refusal"))
    assert failure_class(Outcome(refused)) == "content_policy"
    cut = anthropic.types.Message.model_validate(message("half", stop="max_tokens"))
    assert failure_class(Outcome(cut)) == "unusable_answer"
    fine = anthropic.types.Message.model_validate(message("whole"))
    assert failure_class(Outcome(fine)) is None


async def test_an_open_breaker_under_the_sdk_is_not_transient(clock: FakeClock) -> None:
    upstream = Upstream(error(503, "api_error"))
    pipeline = http_pipeline(clock, attempts=1, minimum_throughput=2)
    http = httpx2.MockTransport(upstream)
    client = resilient_async_anthropic(
        pipeline, inner_transport=http, api_key=FAKE_KEY, base_url=ANTHROPIC_URL
    )
    client._platform = get_platform()
    for _ in range(2):
        with pytest.raises(anthropic.InternalServerError) as failed:
            await advance_until_done(clock, client.messages.create(**ASK))
        assert is_anthropic_transient(failed.value)
    with pytest.raises(anthropic.APIConnectionError) as refused:
        await advance_until_done(clock, client.messages.create(**ASK))
    assert isinstance(refused.value.__cause__, BrokenCircuitError)  # the SDK wraps it
    assert not is_anthropic_transient(refused.value)
    assert not ANTHROPIC_TRANSIENT(Outcome(None, refused.value))
    assert len(upstream.calls) == 2


async def test_transport_layer_retries_529_with_sdk_retries_off(clock: FakeClock) -> None:
    upstream = Upstream(error(529, "overloaded_error"), message("ok"))
    base = client_on(upstream)
    client = make_resilient(base, http_pipeline(clock))
    assert client.max_retries == 0
    again = make_resilient(client, http_pipeline(clock))  # unwrapped, never stacked
    reply = await advance_until_done(clock, again.messages.create(**ASK))
    assert reply.content[0].text == "ok"
    assert len(upstream.calls) == 2
    with pytest.raises(InvalidOptionsError, match="max_retries"):
        resilient_async_anthropic(http_pipeline(clock), api_key=FAKE_KEY, max_retries=2)


# -- cache keys, stale answers ---------------------------------------------------------------


async def test_stale_answer_per_caller_and_keys_ignore_transport_params(clock: FakeClock) -> None:
    upstream = Upstream(message("first"))
    resilience = Resilience(clock=clock)
    llm = ResilientAnthropic(
        client_on(upstream), resilience.llm(canned_reply=canned_message("busy"))
    )
    with use_context(ResilienceContext("chat", user_id="u1")):
        call = llm.messages.create(**ASK, metadata={"user_id": "u1"})
        assert (await advance_until_done(clock, call)).content[0].text == "first"
    upstream.script(error(529, "overloaded_error"))
    with use_context(ResilienceContext("chat", user_id="u1")) as context:
        call = llm.messages.create(**ASK, timeout=5.0)  # not part of the key
        stale = await advance_until_done(clock, call)
        assert stale.content[0].text == "first"
        assert context.degradation.as_dict() == {"llm": "stale_cache"}
    with use_context(ResilienceContext("chat", user_id="u2")) as context:
        other = await advance_until_done(clock, llm.messages.create(**ASK))
        assert other.content[0].text == "busy"  # never u1's answer
        assert context.degradation.as_dict() == {"llm": "canned_reply"}
    key = llm_cache_key(ResilienceContext("k"), (LlmRequest("messages", ASK),), {})
    hotter = llm_cache_key(
        ResilienceContext("k"), (LlmRequest("messages", {**ASK, "temperature": 1}),), {}
    )
    assert key is not None and hotter is not None and key != hotter
    stream = LlmRequest("messages", {**ASK, "stream": True})
    assert llm_cache_key(ResilienceContext("k"), (stream,), {}) is None  # never stored
    assert decode_answer(json.loads(json.dumps(encode_answer(stale)))) == stale
    await resilience.aclose()


# -- streams ---------------------------------------------------------------------------------


async def test_a_stream_completes_on_message_stop(clock: FakeClock) -> None:
    upstream = Upstream(sse_response(events_body(START, BLOCK, delta("Hel"), delta("lo"), *END)))
    llm = ResilientAnthropic(client_on(upstream), http_pipeline(clock))
    stream = await ask(clock, llm, stream=True)
    texts = [e.delta.text async for e in stream if e.type == "content_block_delta"]
    assert texts == ["Hel", "lo"]
    assert stream.completed


async def test_overloaded_event_before_the_first_delta_is_retried(clock: FakeClock) -> None:
    failing = sse_response(events_body(START, OVERLOADED))
    upstream = Upstream(failing, sse_response(events_body(START, BLOCK, delta("ok"), *END)))
    llm = ResilientAnthropic(client_on(upstream), http_pipeline(clock))
    stream = await ask(clock, llm, stream=True)
    assert [e.type async for e in stream][-1] == "message_stop"
    assert len(upstream.calls) == 2


async def test_a_stream_cut_after_a_delta_is_truncated_and_counted(clock: FakeClock) -> None:
    def cut(_request: httpx2.Request) -> httpx2.Response:
        return sse_response(parts_then([events_body(START, BLOCK, delta("Hel"), OVERLOADED)]))

    upstream = Upstream(cut)
    llm = ResilientAnthropic(client_on(upstream), http_pipeline(clock, minimum_throughput=2))
    with use_context(ResilienceContext("chat")) as context:
        stream = await advance_until_done(clock, llm.messages.create(**ASK, stream=True))
        assert breaker_of(llm).state is CircuitState.CLOSED  # opening it was a success
        seen = []
        with pytest.raises(StreamTruncatedError) as caught:
            async for event in stream:
                seen.append(event.type)  # noqa: PERF401 - kept when it raises
        assert caught.value.chunks >= 1  # the caller had text: never replayed
        assert "content_block_delta" in seen
        assert context.degradation.as_dict() == {"llm": "stream_truncated"}
    assert len(upstream.calls) == 1
    assert breaker_of(llm).state is CircuitState.OPEN  # the cut counted as a failure


async def test_canned_message_streams_a_whole_message(clock: FakeClock) -> None:
    upstream = Upstream(error(529, "overloaded_error"))
    pipeline = standard_llm_pipeline(
        clock=clock, retry=RetryOptions(max_attempts=1), canned_reply=canned_message("busy")
    )
    llm = ResilientAnthropic(client_on(upstream), pipeline)
    stream = await ask(clock, llm, stream=True)
    events = [e async for e in stream]
    assert [e.delta.text for e in events if e.type == "content_block_delta"] == ["busy"]
    assert stream.completed


# -- mixed chains ----------------------------------------------------------------------------


async def test_openai_primary_falls_back_to_anthropic(clock: FakeClock) -> None:
    openai_side = FakeProvider()
    openai_side.fail = (503, {})
    claude = Upstream(message("from claude"))
    step = anthropic_chat_alternate("claude", client_on(claude), model="claude-x", max_tokens=99)
    pipeline = standard_llm_pipeline(
        clock=clock, retry=RetryOptions(max_attempts=1), alternates=[step]
    )
    llm = ResilientOpenAI(sdk_client(openai_side), pipeline)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    with use_context(ResilienceContext("chat")) as context:
        call = llm.chat.completions.create(model="gpt-x", messages=chat, stop="END")
        reply = await advance_until_done(clock, call)
        assert reply.choices[0].message.content == "from claude"
        assert reply.choices[0].finish_reason == "stop"
        assert context.degradation.as_dict() == {"llm": "fallback"}
    sent = json.loads(claude.calls[0].content)
    assert sent == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 99,
        "system": "Be brief.",
        "stop_sequences": ["END"],
    }
    claude.script(sse_response(events_body(START, BLOCK, delta("str"), delta("eam"), *END)))
    with use_context(ResilienceContext("chat")):
        call = llm.chat.completions.create(model="gpt-x", messages=chat, stream=True)
        stream = await advance_until_done(clock, call)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "stream"
    assert chunks[-1].choices[0].finish_reason == "stop" and stream.completed
    assert json.loads(claude.calls[1].content)["stream"] is True


async def test_anthropic_primary_falls_back_to_openai_streamed_too(clock: FakeClock) -> None:
    claude = Upstream(error(529, "overloaded_error"))
    openai_side = FakeProvider()
    step = openai_messages_alternate("gpt", sdk_client(openai_side), model="gpt-x")
    pipeline = standard_llm_pipeline(
        clock=clock, retry=RetryOptions(max_attempts=1), alternates=[step]
    )
    llm = ResilientAnthropic(client_on(claude), pipeline)
    with use_context(ResilienceContext("chat")) as context:
        reply = await advance_until_done(clock, llm.messages.create(**ASK, system="Be brief."))
        assert reply.content[0].text == "Echo: hello"
        assert reply.stop_reason == "end_turn"
        assert context.degradation.as_dict() == {"llm": "fallback"}
    assert openai_side.requests[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert openai_side.requests[0]["max_tokens"] == 64
    stream = await ask(clock, llm, stream=True)
    events = [e async for e in stream]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Echo: hello"
    assert events[-1].type == "message_stop" and stream.completed


async def test_translated_steps_are_skipped_for_tool_requests(clock: FakeClock) -> None:
    claude = Upstream(error(529, "overloaded_error"))
    openai_side = FakeProvider()
    same = Upstream(message("from the other region"))
    pipeline = standard_llm_pipeline(
        clock=clock,
        retry=RetryOptions(max_attempts=1),
        alternates=[
            openai_messages_alternate("gpt", sdk_client(openai_side), model="gpt-x"),
            anthropic_alternate("claude-eu", client_on(same), model="claude-y"),
        ],
    )
    llm = ResilientAnthropic(client_on(claude), pipeline)
    tools = [{"name": "t", "description": "d", "input_schema": {"type": "object"}}]
    with use_context(ResilienceContext("chat")) as context:
        reply = await advance_until_done(clock, llm.messages.create(**ASK, tools=tools))
        assert reply.content[0].text == "from the other region"
        assert context.degradation.as_dict()["gpt"] == "missing_capability"
    assert openai_side.requests == []
    assert json.loads(same.calls[0].content)["model"] == "claude-y"
