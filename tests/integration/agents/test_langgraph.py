"""The LangGraph adapter, with the real ``langgraph`` / ``langchain-core`` / ``langchain-openai``
packages against a fake OpenAI-compatible provider (a loopback server for one path)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import RetryPolicy

from netra_resilience import InvalidOptionsError, Resilience, RunRequest
from netra_resilience.engine import RunStatus
from netra_resilience.integrations.langgraph import (
    LangGraphEngine,
    ResilientCheckpointer,
    engine_tools,
    resilient_chat_model,
    resilient_tools,
)
from netra_resilience.integrations.openai import ResilientOpenAI
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.agents.provider import (
    TOOL_RUN_EVENTS,
    FakeProvider,
    Recorder,
    assert_weather_answered,
    sdk_client,
)

pytestmark = pytest.mark.timeout(30)


def weather_graph(llm: ResilientOpenAI, calls: list[str], **model_options: Any) -> Any:
    @tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    tools = resilient_tools([get_weather])
    model = resilient_chat_model(llm, **model_options).bind_tools(tools)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph, tools


async def test_graph_run_over_a_real_loopback_server(clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Paris"}}
    calls: list[str] = []
    async with provider.serve() as root:
        resilience = Resilience(clock=clock)
        client = sdk_client(provider, f"{root}/v1")
        graph, tools = weather_graph(ResilientOpenAI(client, resilience.llm()), calls)
        run = LangGraphEngine(graph.compile())
        engine = resilience.engine(run, tools=engine_tools(tools, get_weather={"effect": "read"}))
        sink = Recorder()
        result = await advance_until_done(clock, engine.run("Weather in Paris?", sink))
        await client.close()
        await resilience.aclose()
    assert_weather_answered(result, calls, provider, sink)


async def test_a_failing_checkpointer_degrades_the_run_instead_of_failing_it(
    clock: FakeClock,
) -> None:
    class BrokenSaver(InMemorySaver):
        down = False

        async def aget_tuple(self, config: Any) -> Any:
            if self.down:
                raise ConnectionError("checkpoint db refused")
            return await super().aget_tuple(config)

        async def aput(self, *args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionError("checkpoint db refused")
            return await super().aput(*args, **kwargs)

    provider = FakeProvider()
    resilience = Resilience(clock=clock)
    graph, _tools = weather_graph(ResilientOpenAI(sdk_client(provider), resilience.llm()), [])
    saver = BrokenSaver()
    run = LangGraphEngine(graph.compile(), checkpointer=ResilientCheckpointer(saver, resilience))
    engine = resilience.engine(run)
    ok = await advance_until_done(clock, engine.run(RunRequest("hi", metadata={"thread_id": "t"})))
    assert ok.output == "Echo: hi"
    assert ok.degradation == {}
    saver.down = True
    flags = []
    for _ in range(4):
        result = await advance_until_done(
            clock, engine.run(RunRequest("hello", metadata={"thread_id": "t"}))
        )
        assert result.output == "Echo: hello"  # answered without the checkpoint database
        flags.append(result.degradation.get("checkpointer"))
    assert flags[0] == "error"
    assert flags[-1] == "skipped"  # its breaker opened: the database is not even tried
    assert result.status is RunStatus.DEGRADED
    await resilience.aclose()


async def test_streamed_tokens_become_delta_events(clock: FakeClock) -> None:
    provider = FakeProvider()
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    graph, _tools = weather_graph(llm, [], disable_streaming=False)
    engine = resilience.engine(LangGraphEngine(graph.compile(), stream=True))
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("stream me", sink))
    assert result.output == "Echo: stream me"
    assert provider.requests[0]["stream"] is True
    deltas = [e["data"]["text"] for e in sink.events if e["data"].get("delta")]
    assert "".join(deltas) == "Echo: stream me"
    await resilience.aclose()


def test_graph_retry_policies_are_refused(clock: FakeClock) -> None:
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(FakeProvider()), resilience.llm())
    graph = StateGraph(MessagesState)

    async def node(state: MessagesState) -> dict[str, Any]:
        return {}

    graph.add_node("model", node, retry_policy=RetryPolicy(max_attempts=3))
    graph.add_edge(START, "model")
    with pytest.raises(InvalidOptionsError, match="RetryPolicy"):
        LangGraphEngine(graph.compile())
    with pytest.raises(InvalidOptionsError, match="max_retries"):
        resilient_chat_model(llm, max_retries=2)
    with pytest.raises(InvalidOptionsError, match="search"):
        engine_tools(weather_graph(llm, [])[1], search={"rate": 1})


async def test_tools_the_engine_does_not_own_get_their_events_from_the_graph(
    clock: FakeClock,
) -> None:
    @tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        raise RuntimeError(f"no station in {city}")

    provider = FakeProvider()
    provider.tool_calls = {"get_weather": {"city": "Paris"}}
    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(sdk_client(provider), resilience.llm())
    model = resilient_chat_model(llm).bind_tools([get_weather])

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([get_weather], handle_tool_errors=True))  # not the engine's
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    engine = resilience.engine(LangGraphEngine(graph.compile()))
    sink = Recorder()
    result = await advance_until_done(clock, engine.run("Weather in Paris?", sink))
    assert result.status is RunStatus.OK, result.exception
    assert sink.types == TOOL_RUN_EVENTS
    executing, completed = sink.events[2]["data"], sink.events[3]["data"]
    assert executing["tool"] == completed["tool"] == "get_weather"
    assert executing["call_id"] == completed["call_id"]
    assert completed["ok"] is False  # the tool raised; ToolNode told the model
    await resilience.aclose()
