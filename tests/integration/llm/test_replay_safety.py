"""LLM calls follow the effect classes: completions are reads, stateful Responses calls are
not replayed after they may have reached the provider unless the caller opts in."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from netra_resilience.effects import Effect
from netra_resilience.integrations.openai import ResilientOpenAI
from netra_resilience.llm import LlmRequest
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    MESSAGES,
    Upstream,
    completion,
    http_pipeline,
    plain_client,
)

RESPONSE: dict[str, Any] = {
    "id": "resp_2",
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
            "content": [{"type": "output_text", "text": "4", "annotations": []}],
        }
    ],
    "parallel_tool_calls": False,
    "tool_choice": "none",
    "tools": [],
}


def stalled() -> httpx2.ReadTimeout:
    return httpx2.ReadTimeout("no answer after the request was sent")


def refused() -> httpx2.ConnectError:
    return httpx2.ConnectError("connection refused")


def llm(clock: FakeClock, upstream: Upstream, **options: Any) -> ResilientOpenAI:
    return ResilientOpenAI(plain_client(upstream), http_pipeline(clock, breaker=False), **options)


async def test_a_completion_is_a_read_and_is_replayed_after_a_timeout(clock: FakeClock) -> None:
    upstream = Upstream(stalled(), completion("4"))
    answer = await advance_until_done(
        clock, llm(clock, upstream).chat.completions.create(model="gpt-x", messages=MESSAGES)
    )
    assert answer.choices[0].message.content == "4" and len(upstream.calls) == 2


@pytest.mark.parametrize(
    "stateful", [{"previous_response_id": "resp_1"}, {"conversation": "conv_1"}, {"store": True}]
)
async def test_a_stateful_responses_call_is_not_replayed_after_a_timeout(
    clock: FakeClock, stateful: dict[str, Any]
) -> None:
    upstream = Upstream(stalled(), RESPONSE)
    with pytest.raises(openai.APITimeoutError):
        await advance_until_done(
            clock, llm(clock, upstream).responses.create(model="gpt-x", input="2+2?", **stateful)
        )
    assert len(upstream.calls) == 1  # the provider may have produced output: no blind replay


async def test_a_stateful_call_refused_before_sending_is_retried(clock: FakeClock) -> None:
    upstream = Upstream(refused(), httpx2.Response(503, json={"error": {}}), RESPONSE)
    response = await advance_until_done(
        clock,
        llm(clock, upstream).responses.create(
            model="gpt-x", input="2+2?", previous_response_id="resp_1"
        ),
    )
    assert response.id == "resp_2" and len(upstream.calls) == 3


async def test_replaying_stateful_calls_is_an_explicit_opt_in(clock: FakeClock) -> None:
    upstream = Upstream(stalled(), RESPONSE)
    client = llm(clock, upstream, replay_stateful=True)
    response = await advance_until_done(
        clock, client.responses.create(model="gpt-x", input="2+2?", previous_response_id="r1")
    )
    assert response.id == "resp_2" and len(upstream.calls) == 2


def test_which_requests_are_stateful(clock: FakeClock) -> None:
    client = llm(clock, Upstream(RESPONSE))
    assert client.effect_of(LlmRequest("chat", {"store": True})) is Effect.READ
    assert client.effect_of(LlmRequest("responses", {"input": "hi"})) is Effect.READ
    assert client.effect_of(LlmRequest("responses", {"store": False})) is Effect.READ
    stateful = LlmRequest("responses", {"previous_response_id": "r1"})
    assert client.effect_of(stateful) is Effect.UNSAFE
    replaying = llm(clock, Upstream(RESPONSE), replay_stateful=True)
    assert replaying.effect_of(stateful) is Effect.IDEMPOTENT
