"""Call-level resilience for openai: stale cache, isolation, fallback chain, SDK retries off."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from netra_resilience import (
    BrokenCircuitError,
    InvalidOptionsError,
    PipelineBuilder,
    RateLimitRejectedError,
    ResilienceContext,
    use_context,
)
from netra_resilience.cache import InMemoryTTLCache
from netra_resilience.circuit_breaker import (
    CircuitBreakerOptions,
    CircuitBreakerStrategy,
    CircuitState,
)
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.integrations.openai import (
    ResilientOpenAI,
    canned_reply,
    decode_answer,
    encode_answer,
    openai_alternate,
)
from netra_resilience.llm import LLM_BREAKER_FAILURE, Alternate
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.pipeline import Pipeline
from netra_resilience.rate_limiter import RateLimiterOptions, TokenBucketLimiter
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    MESSAGES,
    Upstream,
    completion,
    plain_client,
    state_of,
    warm,
)


def breaker_options(**kwargs: Any) -> CircuitBreakerOptions:
    settings: dict[str, Any] = {
        "failure_ratio": 0.5,
        "minimum_throughput": 4,
        "sampling_duration": 120.0,
        "break_duration": 30.0,
        "should_handle": LLM_BREAKER_FAILURE,
        "retry_after": None,
    }
    settings.update(kwargs)
    return CircuitBreakerOptions(**settings)


def llm_pipeline(clock: FakeClock, *, attempts: int = 1, **kwargs: Any) -> Pipeline:
    kwargs.setdefault("circuit_breaker", breaker_options())
    return standard_llm_pipeline(
        clock=clock,
        retry=RetryOptions(max_attempts=attempts, delay=1.0, use_jitter=False)
        if attempts > 1
        else RetryOptions(max_attempts=1),
        **kwargs,
    )


async def chat(
    llm: ResilientOpenAI, clock: FakeClock, *, as_user: str | None = "alice", **params: Any
) -> str | None:
    params.setdefault("model", "gpt-x")
    params.setdefault("messages", MESSAGES)
    with use_context(ResilienceContext("chat", user_id=as_user)):
        reply = await advance_until_done(clock, llm.chat.completions.create(**params))
    content: str | None = reply.choices[0].message.content
    return content


async def test_sdk_retries_are_off_and_the_pipeline_is_the_one_retry_owner(
    clock: FakeClock,
) -> None:
    upstream = Upstream(httpx2.Response(500, json={"error": {"message": "x"}}))
    client = plain_client(upstream, max_retries=openai.DEFAULT_MAX_RETRIES)
    assert client.max_retries == 2  # the SDK default...
    llm = ResilientOpenAI(
        client,
        llm_pipeline(clock, attempts=3, circuit_breaker=breaker_options(minimum_throughput=50)),
    )
    assert warm(llm.client).max_retries == 0  # ...turned off on the wrapped copy
    with pytest.raises(openai.InternalServerError):
        await chat(llm, clock)
    assert len(upstream.calls) == 3  # not 3 x 3
    assert clock.sleeps == [1.0, 2.0]


async def test_breaker_opens_then_stale_cache_answers_fast_and_probe_closes(
    clock: FakeClock,
) -> None:
    upstream = Upstream(completion("fresh answer"))
    pipeline = llm_pipeline(clock, cache=AiocacheBackend())
    breaker = pipeline.find(CircuitBreakerStrategy)
    assert breaker is not None
    llm = ResilientOpenAI(plain_client(upstream), pipeline)
    assert await chat(llm, clock) == "fresh answer"
    assert len(upstream.calls) == 1

    upstream.script(httpx2.Response(503, json={"error": {"message": "overloaded"}}))
    for _ in range(3):
        with use_context(ResilienceContext("chat", user_id="alice")) as ctx:
            reply = await advance_until_done(
                clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
            )
        assert reply.choices[0].message.content == "fresh answer"
        assert ctx.degradation.as_dict() == {"llm": "stale_cache"}
    assert state_of(breaker) is CircuitState.OPEN
    calls = len(upstream.calls)

    with use_context(ResilienceContext("chat", user_id="alice")) as ctx:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert reply.choices[0].message.content == "fresh answer"
    assert len(upstream.calls) == calls  # failed fast: the provider was not called
    assert ctx.degradation.reason("llm") == "stale_cache"
    assert [e.reason for e in ctx.degradation.history] == ["circuit_open", "stale_cache"]

    await clock.advance(30.0)
    upstream.script(completion("recovered"))
    with use_context(ResilienceContext("chat", user_id="alice")) as ctx:
        assert (
            await advance_until_done(
                clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
            )
        ).choices[0].message.content == "recovered"
    assert not ctx.degradation
    assert state_of(breaker) is CircuitState.CLOSED


async def test_user_b_never_gets_user_a_answer_unless_sharing_is_configured(
    clock: FakeClock,
) -> None:
    for shared in (False, True):
        upstream = Upstream(completion("alice's private answer"))
        pipeline = llm_pipeline(clock, cache=AiocacheBackend(), share_cache_across_users=shared)
        llm = ResilientOpenAI(plain_client(upstream), pipeline)
        assert await chat(llm, clock, as_user="alice") == "alice's private answer"
        upstream.script(httpx2.Response(500, json={}))
        if shared:
            assert await chat(llm, clock, as_user="bob") == "alice's private answer"
        else:
            with pytest.raises(openai.InternalServerError):
                await chat(llm, clock, as_user="bob")
            with pytest.raises(openai.InternalServerError):
                await chat(llm, clock, as_user=None)  # anonymous is a scope of its own too
        assert await chat(llm, clock, as_user="alice") == "alice's private answer"


@pytest.mark.parametrize(
    ("changed", "served"),
    [
        ({"temperature": 0.9}, False),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, False),
        ({"tool_choice": "none"}, False),
        ({"top_p": 0.5}, False),
        ({"seed": 7}, False),
        ({"response_format": {"type": "json_object"}}, False),
        ({"max_tokens": 5}, False),
        ({"stop": ["\n"]}, False),
        ({"n": 2}, False),
        ({"model": "gpt-y"}, False),
        ({"messages": [{"role": "user", "content": "What is 3+3?"}]}, False),
        ({"extra_body": {"reasoning": {"effort": "high"}}}, False),
        ({"temperature": 0.2}, True),  # identical request
        ({"temperature": 0.2, "timeout": 3.0}, True),  # transport-only parameters
        ({"temperature": 0.2, "extra_headers": {"x-trace": "1"}}, True),
        ({"temperature": 0.2, "user": "tracking-id", "metadata": {"a": "b"}}, True),
    ],
)
async def test_cache_key_covers_every_field_that_changes_the_answer(
    clock: FakeClock, changed: dict[str, Any], served: bool
) -> None:
    upstream = Upstream(completion("cached"))
    llm = ResilientOpenAI(
        plain_client(upstream), llm_pipeline(clock, cache=AiocacheBackend())
    )
    assert await chat(llm, clock, temperature=0.2) == "cached"
    upstream.script(httpx2.Response(500, json={}))
    params = {"temperature": 0.2, **changed}
    if served:
        assert await chat(llm, clock, **params) == "cached"
    else:
        with pytest.raises(openai.InternalServerError):
            await chat(llm, clock, **params)


async def test_equal_numbers_and_dict_order_share_a_key(clock: FakeClock) -> None:
    upstream = Upstream(completion("cached"))
    llm = ResilientOpenAI(
        plain_client(upstream), llm_pipeline(clock, cache=AiocacheBackend())
    )
    first = [{"role": "user", "content": "hi"}]
    assert await chat(llm, clock, temperature=1, messages=first) == "cached"
    upstream.script(httpx2.Response(500, json={}))
    reordered = [{"content": "hi", "role": "user"}]
    assert await chat(llm, clock, temperature=1.0, messages=reordered) == "cached"


@pytest.mark.parametrize(
    "bad_answer",
    [
        completion(None, message={"refusal": "I can't help with that."}),  # type: ignore[arg-type]
        completion("partial", finish_reason="content_filter"),
    ],
)
async def test_refusals_are_never_cached(clock: FakeClock, bad_answer: dict[str, Any]) -> None:
    upstream = Upstream(bad_answer)
    llm = ResilientOpenAI(
        plain_client(upstream), llm_pipeline(clock, cache=AiocacheBackend())
    )
    await chat(llm, clock)
    upstream.script(httpx2.Response(500, json={}))
    with pytest.raises(openai.InternalServerError):
        await chat(llm, clock)


async def test_malformed_json_is_a_handled_failure(clock: FakeClock) -> None:
    bad = httpx2.Response(200, headers={"content-type": "application/json"}, content=b'{"id": ')
    upstream = Upstream(bad, completion("second try"))
    llm = ResilientOpenAI(
        plain_client(upstream),
        llm_pipeline(clock, attempts=2, cache=AiocacheBackend()),
    )
    assert await chat(llm, clock) == "second try"  # retried
    assert len(upstream.calls) == 2
    upstream.script(bad)
    with use_context(ResilienceContext("chat", user_id="alice")) as ctx:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert reply.choices[0].message.content == "second try"  # and then answered stale
    assert ctx.degradation.reason("llm") == "stale_cache"


def alternate_pipeline(clock: FakeClock, name: str) -> Pipeline:
    return (
        PipelineBuilder(name, clock=clock)
        .add_circuit_breaker(breaker_options(minimum_throughput=2))
        .build()
    )


async def test_fallback_chain_skips_open_breakers_and_marks_every_step(clock: FakeClock) -> None:
    primary = Upstream(httpx2.Response(503, json={}))
    broken = Upstream(httpx2.Response(500, json={}))
    backup = Upstream(completion("from the backup deployment", model="gpt-mini"))
    broken_pipeline = alternate_pipeline(clock, "eu")
    eu = openai_alternate("eu", plain_client(broken), pipeline=broken_pipeline, clock=clock)
    mini = openai_alternate(
        "mini",
        plain_client(backup),
        model="gpt-mini",
        pipeline=alternate_pipeline(clock, "mini"),
        clock=clock,
    )
    pipeline = llm_pipeline(clock, alternates=[eu, mini])
    llm = ResilientOpenAI(plain_client(primary), pipeline)

    with use_context(ResilienceContext("chat")) as ctx:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert reply.choices[0].message.content == "from the backup deployment"
    assert ctx.degradation.as_dict() == {"eu": "error", "llm": "fallback"}
    assert backup.bodies()[-1]["model"] == "gpt-mini"  # the alternate's model override
    assert backup.bodies()[-1]["messages"] == MESSAGES

    with use_context(ResilienceContext("chat")):  # eu fails again: its breaker opens
        await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    breaker = broken_pipeline.find(CircuitBreakerStrategy)
    assert state_of(breaker) is CircuitState.OPEN
    eu_calls = len(broken.calls)
    with use_context(ResilienceContext("chat")) as ctx:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert len(broken.calls) == eu_calls  # skipped without a call
    assert ctx.degradation.as_dict() == {"eu": "circuit_open", "llm": "fallback"}


async def test_canned_reply_is_the_last_resort_after_stale_and_never_cached(
    clock: FakeClock,
) -> None:
    upstream = Upstream(completion("good answer"))
    pipeline = llm_pipeline(
        clock,
        cache=AiocacheBackend(),
        canned_reply=canned_reply("The assistant is busy, please retry shortly.", clock=clock),
        circuit_breaker=breaker_options(minimum_throughput=100),
    )
    llm = ResilientOpenAI(plain_client(upstream), pipeline)
    assert await chat(llm, clock, as_user="alice") == "good answer"
    upstream.script(httpx2.Response(500, json={}))

    with use_context(ResilienceContext("chat", user_id="alice")) as ctx:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert reply.choices[0].message.content == "good answer"  # stale beats canned
    assert ctx.degradation.as_dict() == {"llm": "stale_cache"}

    with use_context(ResilienceContext("chat", user_id="bob")) as ctx:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert isinstance(reply, openai.types.chat.ChatCompletion)
    assert reply.choices[0].message.content == "The assistant is busy, please retry shortly."
    assert ctx.degradation.as_dict() == {"llm": "canned_reply"}

    # The canned text was not stored: once bob's stale lookup has nothing, he gets it again,
    # and alice's entry still holds the real answer.
    upstream.script(completion("fresh again"))
    assert await chat(llm, clock, as_user="bob") == "fresh again"


async def test_alternate_answers_are_not_cached_as_the_primary(clock: FakeClock) -> None:
    primary = Upstream(httpx2.Response(500, json={}))
    backup = Upstream(completion("backup answer"))
    alt = openai_alternate("backup", plain_client(backup), clock=clock)
    llm = ResilientOpenAI(
        plain_client(primary),
        llm_pipeline(
            clock,
            cache=AiocacheBackend(),
            alternates=[alt],
            circuit_breaker=breaker_options(minimum_throughput=100),
        ),
    )
    assert await chat(llm, clock) == "backup answer"
    backup.script(httpx2.Response(500, json={}))
    with pytest.raises(openai.InternalServerError):
        await chat(llm, clock)  # nothing stale: the backup's answer was not stored


async def test_responses_api_is_cached_and_served_stale(clock: FakeClock) -> None:
    answer = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "gpt-x",
        "status": "completed",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "responses hi", "annotations": []}],
            }
        ],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    }
    upstream = Upstream(answer)
    llm = ResilientOpenAI(
        plain_client(upstream), llm_pipeline(clock, cache=AiocacheBackend())
    )
    with use_context(ResilienceContext("r", user_id="u")):
        first = await advance_until_done(clock, llm.responses.create(model="gpt-x", input="hi"))
    assert first.output_text == "responses hi"
    upstream.script(httpx2.Response(502, json={}))
    with use_context(ResilienceContext("r", user_id="u")) as ctx:
        again = await advance_until_done(clock, llm.responses.create(model="gpt-x", input="hi"))
    assert again.output_text == "responses hi"
    assert ctx.degradation.reason("llm") == "stale_cache"
    assert upstream.bodies()[-1]["input"] == "hi"


async def test_a_shared_cache_with_a_json_codec(clock: FakeClock) -> None:
    from aiocache import SimpleMemoryCache
    from aiocache.serializers import JsonSerializer

    backend = AiocacheBackend(
        SimpleMemoryCache(serializer=JsonSerializer()), encode=encode_answer, decode=decode_answer
    )
    upstream = Upstream(completion("serialised"))
    llm = ResilientOpenAI(plain_client(upstream), llm_pipeline(clock, cache=backend))
    assert await chat(llm, clock) == "serialised"
    upstream.script(httpx2.Response(500, json={}))
    assert await chat(llm, clock) == "serialised"


async def test_generator_messages_are_replayed_on_every_attempt(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(500, json={}), completion("ok"))
    llm = ResilientOpenAI(plain_client(upstream), llm_pipeline(clock, attempts=2))
    messages = (m for m in MESSAGES)
    assert await chat(llm, clock, messages=messages) == "ok"
    assert [b["messages"] for b in upstream.bodies()] == [MESSAGES, MESSAGES]


async def test_preset_cross_field_validation() -> None:
    with pytest.raises(InvalidOptionsError, match="attempt_timeout"):
        standard_llm_pipeline(attempt_timeout=60, total_timeout=30)
    with pytest.raises(InvalidOptionsError, match="sampling_duration"):
        standard_llm_pipeline(
            attempt_timeout=60, circuit_breaker=CircuitBreakerOptions(sampling_duration=90)
        )
    with pytest.raises(InvalidOptionsError, match="cumulative retry delay"):
        standard_llm_pipeline(
            total_timeout=20,
            attempt_timeout=10,
            retry=RetryOptions(max_attempts=6, delay=2.0, max_delay=30.0),
        )
    with pytest.raises(InvalidOptionsError, match="total_timeout"):
        standard_llm_pipeline(total_timeout=-1)
    pipeline = standard_llm_pipeline(cache=InMemoryTTLCache())
    assert [s.kind for s in pipeline.strategies] == [
        "cache",
        "timeout",
        "retry",
        "rate_limiter",  # the shared pause gate
        "circuit_breaker",
        "timeout",
    ]


async def test_a_provider_429_pauses_the_rate_limiter_for_everyone(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=100.0, burst=10, clock=clock)
    upstream = Upstream(
        httpx2.Response(429, headers={"retry-after-ms": "5000"}, json={"error": {}})
    )
    llm = ResilientOpenAI(
        plain_client(upstream),
        llm_pipeline(clock, rate_limiter=RateLimiterOptions(limiter=limiter, max_wait=0)),
    )
    with pytest.raises(openai.RateLimitError):
        await chat(llm, clock)
    assert limiter.paused_until == pytest.approx(clock.monotonic() + 5.0)
    with pytest.raises(RateLimitRejectedError):
        await chat(llm, clock, as_user="someone else")  # refused without calling upstream
    assert len(upstream.calls) == 1


def test_alternate_needs_a_name() -> None:
    async def call(*args: Any, **kwargs: Any) -> None:
        return None

    with pytest.raises(ValueError, match="name"):
        Alternate(name="", call=call)


async def test_rejection_without_cache_is_raised_as_a_broken_circuit(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(500, json={}))
    llm = ResilientOpenAI(plain_client(upstream), llm_pipeline(clock))
    for _ in range(4):
        with pytest.raises(openai.InternalServerError):
            await chat(llm, clock)
    with pytest.raises(BrokenCircuitError):
        await chat(llm, clock)
