"""The fallback chain chooses by the failure's class (real SDK, scripted OpenAI-compatible
upstreams): bigger window, other provider, no sleeping on a long 429, unusable 200s replaced,
alternates lacking a needed capability skipped; each step flagged with its reason."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from netra_resilience import ResilienceContext, use_context
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply, openai_alternate
from netra_resilience.llm import UnusableAnswerError, failure_class
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import MESSAGES, Upstream, completion, plain_client


def error(status: int, code: str, **headers: str) -> httpx2.Response:
    body = {"error": {"message": "refused", "type": "invalid_request_error", "code": code}}
    return httpx2.Response(status, json=body, headers=headers)


def alternate(name: str, upstream: Upstream, **meta: Any) -> Any:
    return openai_alternate(name, plain_client(upstream), model=name, **meta)


async def ask(
    clock: FakeClock, primary: Upstream, alternates: list[Any], **params: Any
) -> tuple[Any, ResilienceContext]:
    pipeline = standard_llm_pipeline(
        clock=clock,
        alternates=alternates,
        provider="openai",
        context_window=8_000,
        canned_reply=canned_reply("busy", clock=clock),
    )
    llm = ResilientOpenAI(plain_client(primary), pipeline)
    ctx = ResilienceContext("chat")
    with use_context(ctx):
        call = llm.chat.completions.create(model="gpt-x", messages=MESSAGES, **params)
        reply = await advance_until_done(clock, call)
    return reply, ctx


def marks(ctx: ResilienceContext) -> list[tuple[str, str]]:
    return [tuple(entry) for entry in ctx.degradation.history]  # type: ignore[misc]


async def test_context_overflow_goes_to_a_bigger_window(clock: FakeClock) -> None:
    small, big = Upstream(completion("small")), Upstream(completion("big"))
    primary = Upstream(error(400, "context_length_exceeded"))
    reply, ctx = await ask(
        clock,
        primary,
        [
            alternate("same", small, context_window=8_000),
            alternate("long", big, context_window=128_000),
        ],
    )
    assert reply.choices[0].message.content == "big"
    assert len(primary.calls) == 1 and not small.calls  # a 400 is not retried
    assert marks(ctx) == [
        ("llm", "context_window_exceeded"),
        ("same", "skipped"),
        ("llm", "fallback"),
    ]


async def test_context_overflow_with_no_bigger_window_is_the_callers_error(
    clock: FakeClock,
) -> None:
    primary = Upstream(error(400, "context_length_exceeded"))
    with pytest.raises(openai.BadRequestError):  # no canned reply hides a too-long prompt
        await ask(clock, primary, [alternate("unknown", Upstream(completion()))])


async def test_content_policy_goes_to_another_provider_not_a_retry(clock: FakeClock) -> None:
    same, other = Upstream(completion("same")), Upstream(completion("other"))
    primary = Upstream(error(400, "content_policy_violation"))
    reply, ctx = await ask(
        clock,
        primary,
        [
            alternate("mini", same, provider="openai"),
            alternate("claude", other, provider="anthropic"),
        ],
    )
    assert reply.choices[0].message.content == "other"
    assert len(primary.calls) == 1 and not same.calls
    assert marks(ctx) == [("llm", "content_policy"), ("mini", "skipped"), ("llm", "fallback")]


async def test_a_content_filtered_200_goes_to_another_provider(clock: FakeClock) -> None:
    other = Upstream(completion("other"))
    primary = Upstream(completion("", finish_reason="content_filter"))
    reply, ctx = await ask(clock, primary, [alternate("claude", other, provider="anthropic")])
    assert reply.choices[0].message.content == "other"
    assert marks(ctx)[0] == ("llm", "content_policy")


async def test_a_429_with_retry_after_over_the_cap_fails_over_at_once(clock: FakeClock) -> None:
    other = Upstream(completion("other"))
    primary = Upstream(error(429, "rate_limit_exceeded", **{"retry-after": "600"}))
    start = clock.monotonic()
    reply, ctx = await ask(clock, primary, [alternate("backup", other)])
    assert reply.choices[0].message.content == "other"
    assert clock.monotonic() == start  # nobody slept for the 600 s (nor part of it)
    assert len(primary.calls) == 1
    assert ("llm", "rate_limited") in marks(ctx) and marks(ctx)[-1] == ("llm", "fallback")


@pytest.mark.parametrize(
    ("body", "params"),
    [
        (completion(""), {}),  # empty
        (completion("The answ", finish_reason="length"), {}),  # cut at the output cap
        (completion("not json"), {"response_format": {"type": "json_object"}}),  # malformed
        ({**completion(), "choices": []}, {}),  # no choice at all
    ],
)
async def test_an_unusable_200_goes_to_the_next_model(
    clock: FakeClock, body: dict[str, Any], params: dict[str, Any]
) -> None:
    good = '{"answer": 4}' if params else "4"
    other = Upstream(completion(good))
    reply, ctx = await ask(clock, Upstream(body), [alternate("backup", other)], **params)
    assert reply.choices[0].message.content == good
    assert marks(ctx) == [("llm", "unusable_answer"), ("llm", "fallback")]


async def test_alternates_lacking_a_needed_capability_are_skipped(clock: FakeClock) -> None:
    plain, tooled = Upstream(completion("plain")), Upstream(completion("tooled"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    reply, ctx = await ask(
        clock,
        Upstream(httpx2.Response(503, json={"error": {"message": "down"}})),
        [
            alternate("plain", plain, capabilities={"json_mode"}),
            alternate("tooled", tooled, capabilities={"tools", "json_mode"}),
        ],
        tools=tools,
    )
    assert reply.choices[0].message.content == "tooled"
    assert not plain.calls
    assert ("plain", "missing_capability") in marks(ctx)


async def test_an_outage_with_no_alternate_left_gets_the_canned_reply(clock: FakeClock) -> None:
    down = httpx2.Response(503, json={"error": {"message": "down"}})
    reply, ctx = await ask(clock, Upstream(down), [alternate("backup", Upstream(down))])
    assert reply.choices[0].message.content == "busy"
    assert ctx.degradation.reason("llm") == "canned_reply"


def test_failure_class_of_plain_outcomes() -> None:
    assert failure_class(Outcome(completion("4"))) is None
    assert failure_class(Outcome(None, ValueError("bug"))) is None
    assert failure_class(Outcome(None, ConnectionError("reset"))) == "unavailable"


async def test_json_mode_not_json_with_no_alternate_raises_with_the_answer(
    clock: FakeClock,
) -> None:
    with pytest.raises(UnusableAnswerError) as info:
        await ask(clock, Upstream(completion("nope")), [], response_format={"type": "json_object"})
    assert info.value.answer.choices[0].message.content == "nope"
