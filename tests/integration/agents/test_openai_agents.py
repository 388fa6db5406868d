"""The OpenAI Agents SDK adapter, with the real ``openai-agents`` package against a fake
OpenAI-compatible provider (a real loopback server for one path, a mock transport elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
from agents import Agent, ModelSettings, RunConfig, function_tool
from agents.retry import ModelRetrySettings

from netra_resilience import InvalidOptionsError, Resilience, RunRequest, Tool
from netra_resilience.engine import RunStatus
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply
from netra_resilience.integrations.openai_agents import AgentsEngine
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.agents.provider import (
    FakeProvider,
    Recorder,
    assert_weather_answered,
    sdk_client,
)

pytestmark = pytest.mark.timeout(30)

NO_TRACING = RunConfig(tracing_disabled=True)


def weather_agent(calls: list[str]) -> Agent[Any]:
    @function_tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return Agent(name="assistant", instructions="Answer briefly.", tools=[get_weather])


async def test_agent_run_over_a_real_loopback_server(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Paris"}}
    calls: list[str] = []
    async with provider.serve() as root:
        resilience = Resilience(clock=clock)
        client = sdk_client(provider, f"{root}/v1")
        llm = ResilientOpenAI(client, resilience.llm())
        run = AgentsEngine(weather_agent(calls), llm, run_config=NO_TRACING)
        engine = resilience.engine(run, tools=run.tools())
        sink = Recorder()
        result = await advance_until_done(clock, engine.run("Weather in Paris?", sink))
        await client.close()
        await resilience.aclose()
    assert_weather_answered(result, calls, provider, sink)
    assert sink.events[-1]["data"]["status"] == "ok"
    assert [e["seq"] for e in sink.events] == list(range(1, 7))


async def test_failing_tool_is_retried_then_reported_to_the_model(clock: FakeClock) -> None:
    attempts: list[str] = []

    @function_tool
    async def lookup(term: str) -> str:
        """Look a term up."""
        attempts.append(term)
        raise ConnectionError("lookup.internal refused")

    provider = FakeProvider()
    provider.tool_calls = {"lookup": {"term": "netra"}}
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    run = AgentsEngine(Agent(name="a", tools=[lookup]), llm, run_config=NO_TRACING)
    engine = resilience.engine(run, tools=run.tools(lookup={"effect": "read", "max_attempts": 2}))
    result = await advance_until_done(clock, engine.run("what is netra?"))
    assert attempts == ["netra", "netra"]  # the pipeline saw the exception and retried it
    assert '"error": "failed"' in result.output
    assert result.degradation == {"lookup": "error"}
    assert result.status is RunStatus.DEGRADED
    await resilience.aclose()


async def test_streamed_run_sends_text_deltas_through_the_stream_rules(clock: FakeClock) -> None:
    provider = FakeProvider()
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    run = AgentsEngine(Agent(name="a"), llm, run_config=NO_TRACING, stream=True)
    engine = resilience.engine(run)
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("stream me", sink))
    assert result.output == "Echo: stream me"
    assert provider.requests[0]["stream"] is True
    deltas = [e["data"]["text"] for e in sink.events if e["data"].get("delta")]
    assert "".join(deltas) == "Echo: stream me"
    assert len(deltas) == 2
    assert sink.types[0] == "agent_started"
    assert sink.types[-1] == "agent_completed"
    await resilience.aclose()


async def test_handoff_agents_get_the_resilient_model_and_tools(clock: FakeClock) -> None:
    calls: list[str] = []
    specialist = weather_agent(calls)
    triage = Agent(name="triage", handoffs=[specialist])
    provider = FakeProvider()
    provider.tool_calls = {"transfer_to_assistant": {}, "get_weather": {"city": "Oslo"}}
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    run = AgentsEngine(triage, llm, run_config=NO_TRACING)
    assert run.tool_names == ("get_weather",)
    engine = resilience.engine(run, tools=run.tools())
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("Weather in Oslo?", sink))
    assert result.output == "Tool said: sunny in Oslo"
    assert calls == ["Oslo"]
    handoffs = [e["data"].get("handoff") for e in sink.events if e["type"] == "agent_thinking"]
    assert "assistant" in handoffs
    copied = run.agent.handoffs[0]
    assert isinstance(copied, Agent)
    assert specialist.tools[0] is not copied.tools[0]  # the user's agent is left as it is
    await resilience.aclose()


async def test_breaker_open_falls_back_to_the_canned_reply(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.fail = (500, {})
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(
        sdk_client(provider), resilience.llm(canned_reply=canned_reply("Busy, retry."))
    )
    engine = resilience.engine(AgentsEngine(Agent(name="a"), llm, run_config=NO_TRACING))
    for _ in range(6):
        result = await advance_until_done(clock, engine.run(RunRequest("hi", user_id="u")))
        assert result.output == "Busy, retry."
    calls = len(provider.requests)
    result = await advance_until_done(clock, engine.run(RunRequest("hi", user_id="u")))
    assert result.output == "Busy, retry."
    assert len(provider.requests) == calls  # the breaker is open: no request at all
    assert result.degradation == {"llm": "canned_reply"}
    await resilience.aclose()


def test_options_are_checked_at_construction(clock: FakeClock) -> None:
    provider = FakeProvider()
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    retrying = Agent(name="r", model_settings=ModelSettings(retry=ModelRetrySettings()))
    with pytest.raises(InvalidOptionsError, match="agent"):
        AgentsEngine(retrying, llm)
    run = AgentsEngine(weather_agent([]), llm)
    with pytest.raises(InvalidOptionsError, match="search"):
        run.tools(search={"rate": 1})
    with pytest.raises(InvalidOptionsError, match="max_turns"):
        AgentsEngine(Agent(name="a"), llm, max_turns=0)
    tools = run.tools(get_weather={"rate": 2})
    assert [t.name for t in tools] == ["get_weather"]
    assert isinstance(tools[0], Tool) and tools[0].rate == 2


async def test_a_tool_not_given_to_the_engine_runs_as_is_and_is_announced(
    clock: FakeClock,
) -> None:
    calls: list[str] = []
    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Rome"}}
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    run = AgentsEngine(weather_agent(calls), llm, run_config=NO_TRACING)
    engine = resilience.engine(run)  # no tools=: the SDK runs the tool itself
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("Weather in Rome?", sink))
    assert result.output == "Tool said: sunny in Rome"
    assert calls == ["Rome"]
    completed = [e["data"] for e in sink.events if e["type"] == "tool_completed"]
    assert completed == [{"tool": "get_weather", "call_id": completed[0]["call_id"], "ok": True}]
    assert completed[0]["call_id"]  # the model's tool-call id
    await resilience.aclose()
