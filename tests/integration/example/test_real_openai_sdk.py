"""The example backend on the real openai SDK, pointed at a fake OpenAI-compatible server.

Outage (the server answers 500) -> the user still gets the earlier answer from the stale
cache with ``Netra-Degraded: llm=stale_cache`` -> the server recovers -> after the breaker's
break duration a fresh answer comes back without the header. The API key never leaves the
Authorization header it belongs in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import SECRET, FakeOpenAI, chat, running, settings_for


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_outage_stale_answer_with_header_then_recovery(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    clock = FakeClock()
    settings = settings_for(
        tmp_path,
        openai_api_key=SECRET,
        openai_base_url=fake_openai.base_url,
        llm_model="gpt-fake",
    )
    async with running(settings, clock) as client:
        first = await chat(client, "what is resilience?")
        assert first.status_code == 200
        assert first.json()["status"] == "ok"
        assert first.json()["answer"] == "fake-openai answer to: what is resilience?"
        assert fake_openai.requests[-1]["path"] == "/v1/chat/completions"
        assert fake_openai.requests[-1]["authorization"] == f"Bearer {SECRET}"

        fake_openai.down = True
        calls_before = len(fake_openai.requests)
        outage = await chat(client, "what is resilience?")
        assert outage.status_code == 200
        assert outage.headers["netra-degraded"] == "llm=stale_cache"
        assert outage.json()["answer"] == "fake-openai answer to: what is resilience?"
        assert outage.json()["status"] == "degraded"
        assert len(fake_openai.requests) - calls_before == 3  # one call, retried twice
        final = outage.json()["events"][-1]
        assert final["type"] == "agent_completed" and final["degraded"] == {"llm": "stale_cache"}

        for _ in range(3):  # the breaker opens: later calls no longer reach the provider
            await chat(client, "what is resilience?")
        opened_at = len(fake_openai.requests)
        shed = await chat(client, "what is resilience?")
        assert shed.headers["netra-degraded"] == "llm=stale_cache"
        assert len(fake_openai.requests) == opened_at

        fake_openai.down = False
        await clock.advance(settings.breaker_seconds + 0.1)
        recovered = await chat(client, "what is resilience?")
        assert recovered.status_code == 200
        assert "netra-degraded" not in recovered.headers
        assert recovered.json()["status"] == "ok"
        everything = [first, outage, shed, recovered]
        assert all(SECRET not in r.text and SECRET not in str(r.headers) for r in everything)
