"""A tool-using Claude agent (the anthropic SDK) behind netra-resilience, served by FastAPI.

Run: ``ANTHROPIC_API_KEY=... uvicorn examples.anthropic_app:app`` (``ANTHROPIC_BASE_URL`` for
another Anthropic-compatible server), then
``curl -X POST localhost:8000/chat -d '{"user_id": "u1", "message": "Weather in Paris?"}'``.
Tests build it with a fake provider and a fake clock.

Every ``messages.create`` goes through the LLM pipeline (529/5xx retried on the fake-able
clock, stale answer when the provider is down, canned reply as the last resort), the
function tool runs behind a rate limiter and breaker, the analytics hook behind its own
breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anthropic import AsyncAnthropic, beta_async_tool
from fastapi import FastAPI

from netra_resilience import Hook, Resilience, RunRequest
from netra_resilience.integrations.anthropic import (
    AnthropicEngine,
    ResilientAnthropic,
    canned_message,
)
from netra_resilience.integrations.fastapi import CurrentDegradation, install

MODEL = "claude-sonnet-4-6"


def create_app(
    client: AsyncAnthropic,
    weather: Callable[[str], Awaitable[str]],
    send_analytics: Callable[[Any], Awaitable[None]],
    resilience: Resilience,
) -> FastAPI:
    @beta_async_tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        return await weather(city)

    llm = ResilientAnthropic(client, resilience.llm(canned_reply=canned_message("Busy, retry.")))
    run = AnthropicEngine(llm, model=MODEL, tools=[get_weather], system="Answer briefly.")
    engine = resilience.engine(
        run,
        hooks=[Hook("analytics", send_analytics, timeout=0.5)],
        tools=run.tools(get_weather={"effect": "read", "rate": 1, "burst": 1, "max_wait": 0}),
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


def __getattr__(name: str) -> FastAPI:  # ``uvicorn examples.anthropic_app:app``
    if name == "app":
        return create_app(AsyncAnthropic(), _sunny, _no_analytics, Resilience())
    raise AttributeError(name)
