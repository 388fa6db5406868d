"""Agent-framework adapters: overhead per model call and per run against the bare framework.

    .venv/bin/python -m bench.adapters [--calls 200] [--rounds 7] [--warmup 20]

Every variant talks to the same in-process fake provider (``tests/integration/agents/
provider.py`` behind an ``httpx2.MockTransport``: the real SDKs, no sockets), so what differs
is only the adapter. For each of openai_agents, pydantic_ai, langgraph and anthropic:

* **model call**: one question without tools through the framework's own model path, on a
  plain SDK client (bare) and on the adapter's resilient model (``resilience.llm()``: timeouts,
  retry, breaker, the stale-answer cache storing each answer). For anthropic the framework is
  the SDK itself: ``messages.create`` against ``ResilientAnthropic.messages.create``.
* **run**: a question that makes the model call a tool and answer (two model calls, one tool
  call): the framework's run (``Runner.run``, ``Agent.run``, ``graph.ainvoke``, the anthropic
  SDK's ``tool_runner``) against the adapter's engine under ``resilience.engine`` (events, the
  tool behind its pipeline, the final ``agent_completed``).

Prints microseconds per call/run and the paired extra over the bare framework (median over
rounds of the difference within a round). Not run by the tests (the smoke test runs it tiny).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic

from bench._harness import Row, RunFn, Variant, measure, summary, version
from netra_resilience import Resilience
from tests.integration.agents.provider import (
    BASE_URL,
    FAKE_KEY,
    FakeProvider,
    anthropic_client,
    sdk_client,
)

MODEL = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-6"
QUESTION = "hello"
TOOL_QUESTION = "Weather in Paris?"


def provider() -> FakeProvider:
    fake = FakeProvider()
    fake.tool_calls = {"get_weather": {"city": "Paris"}}
    return fake


async def sunny(city: str) -> str:
    return f"sunny in {city}"


def looped(fake: FakeProvider, once: Callable[[], Awaitable[Any]], calls: int) -> RunFn:
    """``once`` n times; each must have made ``calls`` model requests (what the row claims)."""

    async def run(n: int) -> None:
        for _ in range(n):
            fake.requests.clear()  # the fake keeps what it saw: bounded memory
            fake.paths.clear()
            await once()
            if len(fake.paths) != calls:
                raise RuntimeError(f"{len(fake.paths)} model requests, expected {calls}")

    return run


# -- openai_agents ---------------------------------------------------------------------------


def _agents(with_tool: bool, model: Any = None) -> Any:
    from agents import Agent, function_tool

    @function_tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        return await sunny(city)

    tools: list[Any] = [get_weather] if with_tool else []
    if model is None:
        return Agent(name="assistant", instructions="Answer briefly.", tools=tools)
    return Agent(name="assistant", instructions="Answer briefly.", tools=tools, model=model)


async def agents_bare(with_tool: bool) -> RunFn:
    from agents import OpenAIChatCompletionsModel, RunConfig, Runner

    fake = provider()
    agent = _agents(with_tool, OpenAIChatCompletionsModel(MODEL, sdk_client(fake)))
    config = RunConfig(tracing_disabled=True)
    question = TOOL_QUESTION if with_tool else QUESTION
    return looped(
        fake, lambda: Runner.run(agent, question, run_config=config), 2 if with_tool else 1
    )


async def agents_netra(with_tool: bool) -> RunFn:
    from agents import RunConfig, Runner

    from netra_resilience.integrations.openai import ResilientOpenAI
    from netra_resilience.integrations.openai_agents import AgentsEngine, ResilientModelProvider

    fake = provider()
    resilience = Resilience()
    llm = ResilientOpenAI(sdk_client(fake), resilience.llm())
    agent = _agents(with_tool)
    if not with_tool:
        config = RunConfig(model_provider=ResilientModelProvider(llm), tracing_disabled=True)
        return looped(fake, lambda: Runner.run(agent, QUESTION, run_config=config), 1)
    run = AgentsEngine(agent, llm, run_config=RunConfig(tracing_disabled=True))
    engine = resilience.engine(run, tools=run.tools(get_weather={"effect": "read"}))
    return looped(fake, lambda: engine.run(TOOL_QUESTION), 2)


# -- pydantic_ai -----------------------------------------------------------------------------


def _pydantic_agent(with_tool: bool) -> Any:
    from pydantic_ai import Agent

    agent: Agent[None, str] = Agent(instructions="Answer briefly.")
    if with_tool:

        @agent.tool_plain
        async def get_weather(city: str) -> str:
            """The current weather in a city."""
            return await sunny(city)

    return agent


async def pydantic_bare(with_tool: bool) -> RunFn:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    fake = provider()
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=sdk_client(fake)))
    agent = _pydantic_agent(with_tool)
    question = TOOL_QUESTION if with_tool else QUESTION
    return looped(fake, lambda: agent.run(question, model=model), 2 if with_tool else 1)


async def pydantic_netra(with_tool: bool) -> RunFn:
    from netra_resilience.integrations.openai import ResilientOpenAI
    from netra_resilience.integrations.pydantic_ai import PydanticAIEngine, resilient_model

    fake = provider()
    resilience = Resilience()
    llm = ResilientOpenAI(sdk_client(fake), resilience.llm())
    agent = _pydantic_agent(with_tool)
    if not with_tool:
        model = resilient_model(llm, MODEL)
        return looped(fake, lambda: agent.run(QUESTION, model=model), 1)
    run = PydanticAIEngine(agent, llm, model_name=MODEL)
    engine = resilience.engine(run, tools=run.tools(get_weather={"effect": "read"}))
    return looped(fake, lambda: engine.run(TOOL_QUESTION), 2)


# -- langgraph -------------------------------------------------------------------------------


def _graph(model: Any, tools: list[Any]) -> Any:
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    bound = model.bind_tools(tools)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile()


def _weather_tool() -> Any:
    from langchain_core.tools import tool

    @tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        return await sunny(city)

    return get_weather


async def langgraph_bare(with_tool: bool) -> RunFn:
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    fake = provider()
    client = sdk_client(fake)
    model = ChatOpenAI(
        model=MODEL,
        api_key=SecretStr(FAKE_KEY),
        base_url=BASE_URL,
        max_retries=0,
        async_client=client.chat.completions,
        root_async_client=client,
        disable_streaming=True,
    )
    if not with_tool:
        return looped(fake, lambda: model.ainvoke(QUESTION), 1)
    graph = _graph(model, [_weather_tool()])
    return looped(fake, lambda: graph.ainvoke({"messages": [("user", TOOL_QUESTION)]}), 2)


async def langgraph_netra(with_tool: bool) -> RunFn:
    from netra_resilience.integrations.langgraph import (
        LangGraphEngine,
        engine_tools,
        resilient_chat_model,
        resilient_tools,
    )
    from netra_resilience.integrations.openai import ResilientOpenAI

    fake = provider()
    resilience = Resilience()
    llm = ResilientOpenAI(sdk_client(fake), resilience.llm())
    model = resilient_chat_model(llm, MODEL)
    if not with_tool:
        return looped(fake, lambda: model.ainvoke(QUESTION), 1)
    tools = resilient_tools([_weather_tool()])
    run = LangGraphEngine(_graph(model, tools))
    engine = resilience.engine(run, tools=engine_tools(tools, get_weather={"effect": "read"}))
    return looped(fake, lambda: engine.run(TOOL_QUESTION), 2)


# -- anthropic -------------------------------------------------------------------------------


def _claude_tool() -> Any:
    @anthropic.beta_async_tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        return await sunny(city)

    return get_weather


ASK: dict[str, Any] = {"model": CLAUDE, "max_tokens": 256}


async def anthropic_bare(with_tool: bool) -> RunFn:
    fake = provider()
    client = anthropic_client(fake)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    if not with_tool:
        return looped(fake, lambda: client.messages.create(**ASK, messages=messages), 1)
    tool = _claude_tool()

    async def run_once() -> Any:
        runner = client.beta.messages.tool_runner(
            **ASK, tools=[tool], messages=[{"role": "user", "content": TOOL_QUESTION}]
        )
        return await runner.until_done()

    return looped(fake, run_once, 2)


async def anthropic_netra(with_tool: bool) -> RunFn:
    from netra_resilience.integrations.anthropic import AnthropicEngine, ResilientAnthropic

    fake = provider()
    resilience = Resilience()
    llm = ResilientAnthropic(anthropic_client(fake), resilience.llm())
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    if not with_tool:
        return looped(fake, lambda: llm.messages.create(**ASK, messages=messages), 1)
    run = AnthropicEngine(llm, model=CLAUDE, tools=[_claude_tool()], max_tokens=256)
    engine = resilience.engine(run, tools=run.tools(get_weather={"effect": "read"}))
    return looped(fake, lambda: engine.run(TOOL_QUESTION), 2)


# -- the table -------------------------------------------------------------------------------

Builder = Callable[[bool], Awaitable[RunFn]]
ADAPTERS: dict[str, tuple[str, Builder, Builder]] = {
    "openai_agents": ("openai-agents", agents_bare, agents_netra),
    "pydantic_ai": ("pydantic-ai-slim", pydantic_bare, pydantic_netra),
    "langgraph": ("langgraph", langgraph_bare, langgraph_netra),
    "anthropic": ("anthropic", anthropic_bare, anthropic_netra),
}
KINDS = {"model call": False, "run": True}


def _build(builder: Builder, with_tool: bool) -> Callable[[], Awaitable[RunFn]]:
    return lambda: builder(with_tool)


def variants() -> tuple[list[Variant], dict[str, str]]:
    found: list[Variant] = []
    baselines: dict[str, str] = {}
    for adapter, (dist, bare, netra) in ADAPTERS.items():
        for kind, with_tool in KINDS.items():
            group = f"{adapter} {kind}"
            base = f"{adapter} bare {kind}"
            found.append(Variant(base, group, _build(bare, with_tool), library=dist))
            found.append(Variant(f"{adapter} netra {kind}", group, _build(netra, with_tool)))
            baselines[group] = base
    return found, baselines


def print_table(rows: list[Row]) -> None:
    header = f"{'variant':<34} {'us each':>9} {'extra us':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row.name:<34} {row.median_ns / 1000:>9.1f} {row.overhead_ns / 1000:>9.1f}")


async def main_async(args: argparse.Namespace) -> None:
    found, baselines = variants()
    rows = await measure(found, baselines, calls=args.calls, rounds=args.rounds, warmup=args.warmup)
    versions = ", ".join(f"{dist} {version(dist)}" for dist, _b, _n in ADAPTERS.values())
    print(
        f"Python {sys.version.split()[0]} on {platform.platform()}; "
        f"{args.rounds} rounds x {args.calls} each; {dt.date.today()}; {versions}"
    )
    for variant in found:
        if variant.error is not None:
            print(f"{variant.name}: {variant.error}")
    print_table(rows)
    by_name = {row.name: row for row in rows}
    for adapter in ADAPTERS:
        for kind in KINDS:
            netra = by_name.get(f"{adapter} netra {kind}")
            bare = by_name.get(f"{adapter} bare {kind}")
            if netra is None or bare is None:
                continue
            unit = "model call" if kind == "model call" else "run (2 model calls + 1 tool)"
            summary(
                f"{adapter} adapter: us per {unit} vs the bare framework",
                f"{netra.median_ns / 1000:.1f} us ({netra.overhead_ns / 1000:+.1f})",
                f"bare {bare.median_ns / 1000:.1f} us",
                netra.median_ns / bare.median_ns,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per variant")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
