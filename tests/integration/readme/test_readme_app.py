"""The README's integration example works as printed: answer, stale answer in an outage, header."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai._base_client import get_platform

from examples.readme_app import create_app
from netra_resilience import Resilience
from netra_resilience.testing import FakeClock, advance_until_done

FAKE_KEY = "sk-test-readme-0123456789abcdef"


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


class Provider:
    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        if self.down:
            return httpx2.Response(503, json={"error": {"message": f"down {FAKE_KEY}"}})
        prompt = json.loads(request.content)["messages"][-1]["content"]
        return httpx2.Response(200, json=completion(f"answer to {prompt}"))


@pytest.fixture
def setup() -> tuple[Provider, FakeClock, list[Any], Any]:
    provider = Provider()
    client = openai.AsyncOpenAI(
        api_key=FAKE_KEY,
        base_url="https://llm.invalid/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(provider)),
        max_retries=0,
    )
    client._platform = get_platform()  # skip the SDK's threaded platform probe
    analytics: list[Any] = []

    async def send_analytics(event: Any) -> None:
        analytics.append(event)

    clock = FakeClock()
    return provider, clock, analytics, create_app(client, send_analytics, Resilience(clock=clock))


async def test_answers_then_serves_stale_with_header_while_provider_is_down(
    setup: tuple[Provider, FakeClock, list[Any], Any],
) -> None:
    provider, clock, analytics, app = setup
    transport = httpx.ASGITransport(app=app)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        body = {"user_id": "u1", "message": "hi"}
        ok = await advance_until_done(clock, http.post("/chat", json=body))
        assert ok.status_code == 200
        assert ok.json() == {"answer": "answer to hi", "status": "ok", "degraded": {}}
        assert "netra-degraded" not in ok.headers

        provider.down = True
        stale = await advance_until_done(clock, http.post("/chat", json=body))
        assert stale.status_code == 200
        assert stale.json()["answer"] == "answer to hi"
        assert stale.json()["status"] == "degraded"
        assert stale.headers["netra-degraded"] == "llm=stale_cache"
        assert provider.calls > 2  # retried (on the fake clock) before serving stale

        other_user = await advance_until_done(
            clock, http.post("/chat", json={"user_id": "u2", "message": "hi"})
        )
        assert other_user.json()["answer"] == "Busy, retry."  # never u1's cached answer
        assert other_user.headers["netra-degraded"] == "llm=canned_reply"
        assert FAKE_KEY not in other_user.text and FAKE_KEY not in str(other_user.headers)

        health = await http.get("/health")
        assert health.headers["content-type"].startswith("application/health+json")
    # Shutdown closes the runtime: the analytics hook queue is drained, not dropped.
    await lifespan.__aexit__(None, None, None)
    assert analytics, "hook events delivered by the time the app has shut down"
