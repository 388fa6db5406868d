"""The simulated OpenAI-compatible provider and the LLM fault switches, through the openai SDK.

The SDK meets each fault as it would meet a real provider's: a refused connection, a 429
with ``Retry-After``, a proxy's error page labelled JSON, a stream that stalls mid-answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from examples.agent_backend.faults import Fault, FaultSwitchTransport, apply
from examples.agent_backend.providers import (
    SIMULATED_BASE_URL,
    SimulatedOpenAI,
    answer_text,
    delta_text,
    openai_client,
)
from netra_resilience import Resilience
from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import SECRET

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a helpful assistant.\nTool result: 3 words"},
    {"role": "user", "content": "hello there"},
]


@pytest.fixture
async def setup() -> AsyncIterator[
    tuple[Resilience, FakeClock, SimulatedOpenAI, openai.AsyncOpenAI]
]:
    clock = FakeClock()
    resilience = Resilience(clock=clock)
    provider = SimulatedOpenAI(sleep=clock.sleep, latency=0.0)
    transport = FaultSwitchTransport(provider.transport(), resilience)
    client = openai_client(transport, api_key="simulated", base_url=SIMULATED_BASE_URL)
    try:
        yield resilience, clock, provider, client
    finally:
        await client.close()


async def test_answers_like_openai_in_json_and_sse(
    setup: tuple[Resilience, FakeClock, SimulatedOpenAI, openai.AsyncOpenAI],
) -> None:
    _, _, provider, client = setup
    completion = await client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    text = answer_text(completion)
    assert text == "(simulated gpt-x) You said: 'hello there'. The tool says: 3 words"
    stream = await client.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(delta_text(c) for c in chunks) == text
    assert len(chunks) == len(text.split(" "))  # one word per chunk
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert provider.calls == 2


async def test_faults_reach_the_sdk_as_a_provider_would_send_them(
    setup: tuple[Resilience, FakeClock, SimulatedOpenAI, openai.AsyncOpenAI],
) -> None:
    resilience, _, provider, client = setup
    apply(resilience, "llm", Fault(kind="rate_limit", seconds=2, message=SECRET))
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert limited.value.response.headers["retry-after"] == "2"

    apply(resilience, "llm", Fault(kind="error", message=SECRET))
    with pytest.raises(openai.APIConnectionError) as refused:
        await client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert SECRET not in str(refused.value)

    apply(resilience, "llm", Fault(kind="malformed"))
    with pytest.raises(json.JSONDecodeError):  # transient for the LLM preset: retried
        await client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert provider.calls == 0  # none of these reached the provider

    resilience.chaos.enabled = False  # outside demo mode nothing is injected
    assert answer_text(await client.chat.completions.create(model="gpt-x", messages=MESSAGES))


async def test_a_stream_stall_holds_every_chunk_after_the_first(
    setup: tuple[Resilience, FakeClock, SimulatedOpenAI, openai.AsyncOpenAI],
) -> None:
    resilience, clock, _, client = setup
    apply(resilience, "llm_stream", Fault(kind="latency", seconds=30))
    stream = await client.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
    first = await anext(aiter(stream))
    assert delta_text(first) == "(simulated "
    second = asyncio.ensure_future(anext(aiter(stream)))
    await clock.advance(29.0)
    assert not second.done()
    await clock.advance(1.0)
    assert delta_text(await second) == "gpt-x) "
    await stream.close()
