"""The pydantic-ai adapter, with the real ``pydantic-ai`` package against a fake
OpenAI-compatible provider (a real loopback server for one path, a mock transport elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Agent, ModelRetry

from netra_resilience import InvalidOptionsError, Resilience
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply
from netra_resilience.integrations.pydantic_ai import PydanticAIEngine, resilient_model
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.agents.provider import (
    FakeProvider,
    Recorder,
    assert_weather_answered,
    sdk_client,
)

pytestmark = pytest.mark.timeout(30)


def weather_agent(calls: list[str]) -> Agent[None, str]:
    agent = Agent(instructions="Answer briefly.")

    @agent.tool_plain
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return agent


async def test_agent_run_over_a_real_loopback_server(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Paris"}}
    calls: list[str] = []
    async with provider.serve() as root:
        resilience = Resilience(clock=clock)
        client = sdk_client(provider, f"{root}/v1")
        run = PydanticAIEngine(weather_agent(calls), ResilientOpenAI(client, resilience.llm()))
        engine = resilience.engine(run, tools=run.tools(get_weather={"effect": "read"}))
        sink = Recorder()
        result = await advance_until_done(clock, engine.run("Weather in Paris?", sink))
        await client.close()
        await resilience.aclose()
    assert_weather_answered(result, calls, provider, sink)
    executing = sink.events[2]["data"]
    assert executing["call_id"] == provider.requests[1]["messages"][-1]["tool_call_id"]
    assert executing["effect"] == "read"


async def test_failing_tool_is_retried_then_reported_to_the_model(clock: FakeClock) -> None:
    attempts: list[str] = []
    agent = Agent()

    @agent.tool_plain
    async def lookup(term: str) -> str:
        """Look a term up."""
        attempts.append(term)
        raise ConnectionError("lookup.internal refused")

    provider = FakeProvider()
    provider.tool_calls = {"lookup": {"term": "netra"}}
    resilience = Resilience(clock=clock)
    run = PydanticAIEngine(agent, ResilientOpenAI(sdk_client(provider), resilience.llm()))
    engine = resilience.engine(run, tools=run.tools(lookup={"effect": "read", "max_attempts": 2}))
    result = await advance_until_done(clock, engine.run("what is netra?"))
    assert attempts == ["netra", "netra"]
    assert '"error": "failed"' in result.output
    assert result.degradation == {"lookup": "error"}
    await resilience.aclose()


async def test_model_retry_passes_through_untouched(clock: FakeClock) -> None:
    agent = Agent()
    attempts: list[str] = []

    @agent.tool_plain
    async def lookup(term: str) -> str:
        """Look a term up."""
        attempts.append(term)
        raise ModelRetry("ask for a shorter term")

    provider = FakeProvider()
    provider.tool_calls = {"lookup": {"term": "netra"}}
    resilience = Resilience(clock=clock)
    run = PydanticAIEngine(agent, ResilientOpenAI(sdk_client(provider), resilience.llm()))
    engine = resilience.engine(run, tools=run.tools(lookup={"effect": "read", "max_attempts": 3}))
    result = await advance_until_done(clock, engine.run("what is netra?"))
    assert attempts == ["netra"]  # pydantic-ai's own signal: not retried by the tool pipeline
    assert "ask for a shorter term" in result.output  # the model got pydantic-ai's retry prompt
    assert result.degradation == {}
    await resilience.aclose()


async def test_streamed_run_sends_text_deltas(clock: FakeClock) -> None:
    provider = FakeProvider()
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    engine = resilience.engine(PydanticAIEngine(Agent(), llm, stream=True))
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("stream me", sink))
    assert result.output == "Echo: stream me"
    assert provider.requests[0]["stream"] is True
    deltas = [e["data"]["text"] for e in sink.events if e["data"].get("delta")]
    assert "".join(deltas) == "Echo: stream me"
    assert sink.types[-1] == "agent_completed"
    await resilience.aclose()


async def test_breaker_open_falls_back_to_the_canned_reply(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.fail = (529, {})
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(
        sdk_client(provider), resilience.llm(canned_reply=canned_reply("Busy, retry."))
    )
    engine = resilience.engine(PydanticAIEngine(Agent(), llm))
    for _ in range(6):
        result = await advance_until_done(clock, engine.run("hi", user_id="u"))
        assert result.output == "Busy, retry."
    calls = len(provider.requests)
    result = await advance_until_done(clock, engine.run("hi", user_id="u"))
    assert result.output == "Busy, retry."
    assert len(provider.requests) == calls  # the breaker is open: no request at all
    assert result.degradation == {"llm": "canned_reply"}
    await resilience.aclose()


def test_options_are_checked_at_construction(clock: FakeClock) -> None:
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(FakeProvider()), resilience.llm())
    run = PydanticAIEngine(weather_agent([]), llm)
    assert run.tool_names == ("get_weather",)
    with pytest.raises(InvalidOptionsError, match="search"):
        run.tools(search={"rate": 1})
    with pytest.raises(InvalidOptionsError, match="agent"):
        PydanticAIEngine(object(), llm)  # type: ignore[arg-type]
    bare: Any = object()
    with pytest.raises(InvalidOptionsError, match="llm"):
        resilient_model(bare)


async def test_a_tool_not_given_to_the_engine_runs_as_is_and_is_announced(
    clock: FakeClock,
) -> None:
    calls: list[str] = []
    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Rome"}}
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    engine = resilience.engine(PydanticAIEngine(weather_agent(calls), llm))  # no tools=
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("Weather in Rome?", sink))
    assert result.output == "Tool said: sunny in Rome"
    assert calls == ["Rome"]
    completed = [e["data"] for e in sink.events if e["type"] == "tool_completed"]
    assert completed == [{"tool": "get_weather", "call_id": completed[0]["call_id"], "ok": True}]
    await resilience.aclose()
