"""A LangGraph agent behind netra-resilience, served by FastAPI.

Run: ``OPENAI_API_KEY=... uvicorn examples.langgraph_app:app`` (any OpenAI-compatible
server works: set ``OPENAI_BASE_URL``), then
``curl -X POST localhost:8000/chat -d '{"user_id": "u1", "message": "Weather in Paris?"}'``.
Tests build it with a fake provider and a fake clock.

The graph is plain LangGraph code (a model node and a ToolNode); the adapter runs its model
calls through the LLM pipeline (stale answer when the provider is down, canned reply as the
last resort), its tool behind a rate limiter and breaker, the analytics hook behind its own
breaker, and the checkpointer behind a breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from openai import AsyncOpenAI

from netra_resilience import Hook, Resilience, RunRequest
from netra_resilience.integrations.fastapi import CurrentDegradation, install
from netra_resilience.integrations.langgraph import (
    LangGraphEngine,
    ResilientCheckpointer,
    engine_tools,
    resilient_chat_model,
    resilient_tools,
)
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply


def create_app(
    client: AsyncOpenAI,
    weather: Callable[[str], Awaitable[str]],
    send_analytics: Callable[[Any], Awaitable[None]],
    resilience: Resilience,
) -> FastAPI:
    @tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        return await weather(city)

    llm = ResilientOpenAI(client, resilience.llm(canned_reply=canned_reply("Busy, retry.")))
    tools = resilient_tools([get_weather])
    model = resilient_chat_model(llm).bind_tools(tools)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    # conversations are checkpointed; while the saver fails, runs go on (checkpointer=error)
    checkpointer = ResilientCheckpointer(InMemorySaver(), resilience)
    run = LangGraphEngine(graph.compile(), checkpointer=checkpointer)
    engine = resilience.engine(
        run,
        hooks=[Hook("analytics", send_analytics, timeout=0.5)],
        tools=engine_tools(
            tools, get_weather={"effect": "read", "rate": 1, "burst": 1, "max_wait": 0}
        ),
    )

    app = FastAPI()
    install(app, resilience)  # Netra-Degraded header, 503 on critical rejections, /health

    @app.post("/chat")
    async def chat(body: dict[str, str], degradation: CurrentDegradation) -> dict[str, Any]:
        events: list[dict[str, Any]] = []

        async def sink(event: dict[str, Any]) -> None:  # a websocket's send_json in real life
            events.append(event)

        result = await engine.run(RunRequest(body["message"], user_id=body["user_id"]), sink)
        return {
            "answer": result.output,
            "status": result.status,
            "degraded": degradation.as_dict(),
            "events": events,
        }

    return app


async def _no_analytics(_event: Any) -> None:
    return None


async def _sunny(city: str) -> str:
    return f"sunny in {city}"


def __getattr__(name: str) -> FastAPI:  # ``uvicorn examples.langgraph_app:app``
    if name == "app":
        return create_app(AsyncOpenAI(), _sunny, _no_analytics, Resilience())
    raise AttributeError(name)
