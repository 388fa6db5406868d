"""The example agent backend, in-process on a fake clock: answers, degrades, recovers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from examples.agent_backend import Settings, create_app
from netra_resilience import Resilience, RunRequest
from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import SECRET, chat, running, settings_for

EVENT_TYPES = ["agent_started", "agent_thinking", "tool_executing", "tool_completed"]


async def test_answers_with_the_five_events_and_no_header(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        response = await chat(client, "please use the tool on this")
    assert response.status_code == 200
    assert "netra-degraded" not in response.headers
    body = response.json()
    assert body["status"] == "ok" and body["degraded"] == {}
    assert "The tool says: 6 words looked up" in body["answer"]
    types = [event["type"] for event in body["events"]]
    for kind in EVENT_TYPES:
        assert kind in types
    assert types[-1] == "agent_completed"
    assert [e["seq"] for e in body["events"]] == list(range(1, len(types) + 1))


async def test_llm_outage_serves_stale_then_canned_then_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        assert (await chat(client, "hi")).json()["status"] == "ok"
        await client.post("/demo/faults/llm", json={"kind": "error", "message": SECRET})

        stale = await chat(client, "hi")
        assert stale.headers["netra-degraded"] == "llm=stale_cache"
        assert stale.json()["answer"].startswith("(simulated")
        assert stale.json()["status"] == "degraded"

        new = await chat(client, "a question never asked before")
        assert new.headers["netra-degraded"] == "llm=canned_reply"
        assert "trouble reaching the language model" in new.json()["answer"]
        for _ in range(5):  # enough failures for the breaker to open
            await chat(client, "hi")
        await clock.advance(2.5)  # the health monitor's next probe
        health = await client.get("/health")
        assert health.status_code == 200  # llm is important: warn, not fail
        assert health.json()["status"] == "warn"
        assert health.json()["checks"]["llm"][0]["circuitState"] == "open"
        assert SECRET not in stale.text + new.text + health.text
        assert SECRET not in str(stale.headers) + str(new.headers)

        await client.delete("/demo/faults")
        await clock.advance(5.5)  # break duration: the next call is the half-open probe
        recovered = await chat(client, "hi")
        assert recovered.json()["status"] == "ok"
        assert "netra-degraded" not in recovered.headers


async def test_malformed_llm_answers_are_never_passed_on(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        await chat(client, "hi")
        await client.post("/demo/faults/llm", json={"kind": "malformed"})
        response = await chat(client, "hi")
    assert response.json()["status"] == "degraded"
    assert response.headers["netra-degraded"] == "llm=stale_cache"
    assert "502" not in response.json()["answer"]


async def test_tool_rate_limit_is_a_value_the_agent_answers_around(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        await client.post("/demo/faults/tool", json={"kind": "rate_limit", "seconds": 3})
        response = await chat(client, "use the tool please")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    completed = [e for e in body["events"] if e["type"] == "tool_completed"]
    assert completed and completed[0]["data"]["ok"] is False
    assert body["answer"].startswith("(simulated")  # answered without the tool's result


async def test_auth_down_known_users_pass_on_their_last_verdict_others_get_503(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        await chat(client, "hi", user="known")
        await client.post("/demo/faults/auth", json={"kind": "error", "message": SECRET})
        known = await chat(client, "hi", user="known")
        stranger = await chat(client, "hi", user="stranger")
    assert known.status_code == 200
    assert known.headers["netra-degraded"] == "auth=stale_cache"
    assert stranger.status_code == 503
    assert stranger.headers["content-type"].startswith("application/problem+json")
    assert "auth" in stranger.text
    assert SECRET not in stranger.text + str(stranger.headers) + known.text


async def test_redis_outage_falls_back_to_the_database_and_keeps_history(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    settings = settings_for(tmp_path, redis_url="memory://")
    async with running(settings, clock) as client:
        await chat(client, "first")
        await client.post("/demo/faults/redis", json={"kind": "error"})
        during = await chat(client, "second")
        assert during.status_code == 200
        # The history read came from the database alone: it may lack Redis's turns, and says so.
        assert during.headers["netra-degraded"] == "redis=fallback_database, sessions=partial"
        third = await chat(client, "third")
        thinking = [e for e in third.json()["events"] if e["type"] == "agent_thinking"]
        assert thinking[0]["data"]["turns"] == 1  # the outage turn, stored in the database
        await client.delete("/demo/faults/redis")
        await clock.advance(1.0)  # the Redis breaker's probe interval: it closes again
        after = await chat(client, "fourth")
    thinking = [e for e in after.json()["events"] if e["type"] == "agent_thinking"]
    assert thinking[0]["data"]["turns"] == 3  # first (Redis) + second, third (database): merged
    assert "sessions=" not in after.headers.get("netra-degraded", "")  # complete again


async def test_analytics_down_is_skipped_and_monitoring_never_changes_health(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        await client.post("/demo/faults/analytics", json={"kind": "error"})
        await client.post("/demo/faults/monitoring", json={"kind": "error"})
        answers = [await chat(client, f"question {i}") for i in range(6)]
        await clock.advance(2.5)
        health = await client.get("/health")
        ready = await client.get("/health/ready")
    assert all(a.status_code == 200 and a.json()["answer"] for a in answers)
    assert any("analytics=skipped" in a.headers.get("netra-degraded", "") for a in answers)
    assert health.json()["checks"]["monitoring"][0]["criticality"] == "monitoring"
    assert ready.status_code == 200


async def test_database_down_makes_the_service_unready(tmp_path: Path) -> None:
    """The embedded SQLite file is this replica's own, and with no Redis in front every
    request needs it: readiness fails (a shared PostgreSQL would not; see the health tests)."""
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        await client.post("/demo/faults/database", json={"kind": "error"})
        answer = await chat(client, "hi")
        await clock.advance(2.5)  # the next probe; its SELECT 1 runs on real (thread) I/O
        for _ in range(200):
            ready = await client.get("/health/ready")
            if ready.status_code == 503:
                break
            await asyncio.sleep(0.01)  # real-sleep-ok: bounded wait for real (thread) I/O
        live = await client.get("/health/live")
    assert answer.status_code == 200  # still answers; the conversation is not stored
    assert answer.headers["netra-degraded"] == "database=unavailable, sessions=not_stored"
    assert "could not be saved" in answer.json()["answer"]  # and the user is told
    assert ready.status_code == 503
    assert live.status_code == 200


async def test_database_down_while_redis_serves_is_a_warning_not_unreadiness(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path, redis_url="memory://"), clock) as client:
        await client.post("/demo/faults/database", json={"kind": "error"})
        await clock.advance(2.5)  # the next database probe fails (real thread I/O first)
        for _ in range(200):
            health = await client.get("/health")
            if health.json()["checks"]["database"][0]["status"] == "fail":
                break
            await asyncio.sleep(0.01)  # real-sleep-ok: bounded wait for real (thread) I/O
        ready = await client.get("/health/ready")
        answer = await chat(client, "hi")
        await client.post("/demo/faults/redis", json={"kind": "error"})  # now it is needed
        await clock.advance(2.0)
        for _ in range(200):
            both = await client.get("/health")
            if both.json()["checks"]["redis"][0]["status"] == "fail":
                break
            await asyncio.sleep(0.01)  # real-sleep-ok: bounded wait for real (thread) I/O
        ready_without_both = await client.get("/health/ready")
    database = health.json()["checks"]["database"][0]
    assert database["status"] == "fail" and database["criticality"] == "important"
    assert "standby for redis" in database["output"]
    assert health.status_code == 200 and health.json()["status"] == "warn"
    assert ready.status_code == 200
    assert answer.status_code == 200  # Redis stores the turn: nothing lost, nothing refused
    assert "not_stored" not in answer.headers.get("netra-degraded", "")
    assert both.status_code == 503  # Redis down too: the request path needs the database
    assert both.json()["checks"]["database"][0]["criticality"] == "critical"
    assert ready_without_both.status_code == 503  # SQLite is this replica's own


async def test_fault_switches_do_not_exist_outside_demo_mode(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path, demo_mode=False), clock) as client:
        response = await client.post("/demo/faults/llm", json={"kind": "error"})
        answer = await chat(client, "hi")
    assert response.status_code == 404
    assert answer.json()["status"] == "ok"


async def test_curl_style_form_content_type_is_accepted(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for(tmp_path), clock) as client:
        response = await client.post(
            "/v1/chat",
            content=b'{"user_id":"u1","message":"hi"}',
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        bad = await client.post("/v1/chat", content=b'{"message": 1}')
    assert response.status_code == 200
    assert bad.status_code == 422


def test_websocket_streams_events_and_stays_open(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/v1/chat/ws") as ws:
        for message in ("hi", "use the tool"):
            ws.send_json({"user_id": "u1", "message": message})
            events: list[dict[str, Any]] = []
            while not events or events[-1]["type"] != "agent_completed":
                events.append(ws.receive_json())
            assert events[0]["type"] == "agent_started"
            assert events[-1]["status"] == "ok"
            streamed = "".join(e["data"]["text"] for e in events if e["data"].get("delta"))
            assert streamed == events[-1]["data"]["output"]  # the answer arrived token by token
            assert all(isinstance(e["degraded"], dict) for e in events)
        ws.send_json({"message": "no user"})
        assert ws.receive_json()["type"] == "error"


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY": SECRET,
            "NETRA_DATABASE_URL": "postgresql://db/app",
            "NETRA_LLM_TIMEOUT": "2.5",
        }
    )
    assert settings.port == 8000
    assert settings.database_url == "postgresql+asyncpg://db/app"
    assert settings.llm_timeout == 2.5
    assert not settings.simulated_llm
    assert SECRET not in repr(settings) + str(settings.describe())
    defaults = Settings.from_env({})
    assert defaults.simulated_llm and defaults.tool_url is None and not defaults.demo_mode
    assert defaults.database_url.startswith("sqlite+aiosqlite:///")


async def test_stream_stalled_mid_answer_is_answered_again_not_cut(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = settings_for(tmp_path, llm_timeout=1.0)
    app = create_app(settings, resilience=Resilience(clock=clock))
    backend = app.state.backend
    async with app.router.lifespan_context(app):
        backend.resilience.chaos.inject_latency(
            "llm_stream", 30.0
        )  # every chunk after the first hangs
        events: list[dict[str, Any]] = []

        async def sink(event: dict[str, Any]) -> None:
            events.append(event)

        request = RunRequest("tell me a story", user_id="u1", metadata={"stream": True})
        run = asyncio.create_task(backend.engine.run(request, sink))
        for _ in range(1000):  # bounded: the session read runs on real (thread) I/O first
            if any(e["data"].get("delta") for e in events):
                break
            await asyncio.sleep(0.005)  # real-sleep-ok: waiting on real I/O, not on time
        assert any(e["data"].get("delta") for e in events)
        await clock.settle()
        await clock.advance(1.0)  # the idle timeout between two chunks
        result = await run
    assert result.status == "degraded"
    assert result.degradation["llm"] == "stream_truncated"
    assert result.output.startswith("(simulated")  # the whole answer, from a fresh call
    assert events[-1]["type"] == "agent_completed"
