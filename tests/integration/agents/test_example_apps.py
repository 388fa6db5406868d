"""The must-show paths of every agent-framework adapter, through its example FastAPI app (the
real framework package, ``install()``, a fake provider behind a mock transport): a stale
answer with ``Netra-Degraded`` while the provider fails, an analytics hook that is down
skipped, a rate-limited tool answered as a typed failure, and always the final
``agent_completed``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from netra_resilience import Resilience
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.agents.provider import (
    FAKE_KEY,
    FakeProvider,
    anthropic_client,
    sdk_client,
)

pytestmark = pytest.mark.timeout(30)

APPS = ["openai_agents_app", "pydantic_ai_app", "langgraph_app", "anthropic_app"]


def make_client(example: str, provider: FakeProvider) -> Any:
    if example == "anthropic_app":
        return anthropic_client(provider)
    return sdk_client(provider)


@pytest.fixture(params=APPS)
async def app_setup(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[tuple[FakeProvider, list[Any], list[str], httpx.AsyncClient, Any]]:
    provider = FakeProvider()
    analytics: list[Any] = []
    cities: list[str] = []
    analytics_down = {"down": False}

    async def weather(city: str) -> str:
        cities.append(city)
        return f"sunny in {city}"

    async def send_analytics(event: Any) -> None:
        if analytics_down["down"]:
            raise ConnectionError("analytics.internal refused")
        analytics.append(event["type"])

    example = importlib.import_module(f"examples.{request.param}")
    client = make_client(request.param, provider)
    app = example.create_app(client, weather, send_analytics, Resilience(clock=clock))
    app.state.analytics_down = analytics_down
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        yield provider, analytics, cities, http, app
    await lifespan.__aexit__(None, None, None)


async def test_stale_answer_with_header_while_the_provider_fails(
    clock: FakeClock, app_setup: Any
) -> None:
    provider, analytics, _cities, http, _app = app_setup
    body = {"user_id": "u1", "message": "hello"}
    ok = await advance_until_done(clock, http.post("/chat", json=body))
    assert ok.json()["answer"] == "Echo: hello"
    assert ok.json()["status"] == "ok"
    assert "netra-degraded" not in ok.headers

    provider.fail = (503, {})
    before = len(provider.requests)
    stale = await advance_until_done(clock, http.post("/chat", json=body))
    assert stale.status_code == 200
    assert stale.json()["answer"] == "Echo: hello"  # the last good answer, served stale
    assert stale.json()["status"] == "degraded"
    assert stale.headers["netra-degraded"] == "llm=stale_cache"
    assert len(provider.requests) - before > 1  # retried on the fake clock first
    events = stale.json()["events"]
    assert events[-1]["type"] == "agent_completed"
    assert events[-1]["data"]["status"] == "degraded"
    assert {"dependency": "llm", "reason": "stale_cache"} in [
        e["data"] for e in events if e["type"] == "agent_degraded"
    ]

    other = await advance_until_done(clock, http.post("/chat", json={**body, "user_id": "u2"}))
    assert other.json()["answer"] == "Busy, retry."  # never u1's cached answer
    assert other.headers["netra-degraded"] == "llm=canned_reply"
    assert FAKE_KEY not in other.text
    assert "agent_completed" in analytics


async def test_analytics_hook_that_is_down_is_skipped(clock: FakeClock, app_setup: Any) -> None:
    _provider, _analytics, _cities, http, app = app_setup
    app.state.analytics_down["down"] = True
    body = {"user_id": "u1", "message": "hello"}
    flags: list[str | None] = []
    for _ in range(4):
        reply = await advance_until_done(clock, http.post("/chat", json=body))
        assert reply.json()["answer"] == "Echo: hello"  # the answer never depends on analytics
        assert reply.json()["events"][-1]["type"] == "agent_completed"
        flags.append(reply.headers.get("netra-degraded"))
    assert flags[-1] == "analytics=skipped"  # its breaker opened: not even attempted


async def test_rate_limited_tool_answers_the_model_with_a_typed_failure(
    clock: FakeClock, app_setup: Any
) -> None:
    provider, _analytics, cities, http, _app = app_setup
    provider.tool_calls = {"get_weather": {"city": "Paris"}}
    body = {"user_id": "u1", "message": "Weather in Paris?"}
    first = await advance_until_done(clock, http.post("/chat", json=body))
    assert first.json()["answer"] == "Tool said: sunny in Paris"
    second = await advance_until_done(clock, http.post("/chat", json=body))  # burst 1, no wait
    answer = second.json()["answer"]
    assert answer.startswith("Tool said: ")
    assert '"error": "rate_limited"' in answer  # the model read the ToolFailure as JSON
    assert cities == ["Paris"]  # the second call never reached the tool
    completed = [e for e in second.json()["events"] if e["type"] == "tool_completed"]
    assert completed[0]["data"]["ok"] is False
    assert completed[0]["data"]["error"] == "rate_limited"
    assert second.json()["events"][-1]["type"] == "agent_completed"
    assert second.json()["status"] == "degraded"  # answered, with the refused tool flagged
    assert second.json()["degraded"] == {"get_weather": "rate_limited"}
