"""The example backend's resumable runs over real HTTP: two uvicorn replicas in this process
share a real redis-server; a client drops mid-run from one and resumes on the other over a
WebSocket (``{"resume", "last_seq"}``) and over SSE (``Last-Event-ID``), getting every event
exactly once, in order, through the final ``agent_completed``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect

from examples.agent_backend import create_app
from netra_resilience import Resilience
from tests.integration.example.helpers import settings_for
from tests.servers import RedisServer, ServerUnavailableError, free_port


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        server = RedisServer()
    except ServerUnavailableError as exc:  # scripts/test installs redis-server (CI has it)
        if os.environ.get("CI"):
            raise  # CI must never pass by skipping the real-server tests
        pytest.skip(str(exc))
    with server:
        yield server.url


@asynccontextmanager
async def replica(tmp_path: Path, redis_url: str, name: str) -> AsyncIterator[str]:
    settings = settings_for(
        tmp_path / name,
        redis_url=redis_url,
        simulated_latency=0.02,  # real seconds per model/tool call: the run is still going
        demo_mode=False,
    )
    (tmp_path / name).mkdir()
    app = create_app(settings, resilience=Resilience())
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded: the server listens within a few ms
        if server.started:
            break
        await asyncio.sleep(0.01)  # real-sleep-ok: polling a real server until it listens
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["seq"]) for e in events]


async def test_websocket_client_resumes_on_the_other_replica(
    tmp_path: Path, redis_url: str
) -> None:
    async with replica(tmp_path, redis_url, "a") as a, replica(tmp_path, redis_url, "b") as b:
        got: list[dict[str, Any]] = []
        async with connect(f"ws://{a}/v1/runs/ws") as ws:
            await ws.send(json.dumps({"user_id": "u1", "message": "what is netra?"}))
            got.extend([json.loads(await ws.recv()) for _ in range(2)])
        # the connection is gone; the run goes on on replica a
        async with connect(f"ws://{b}/v1/runs/ws") as ws:
            resume = {"resume": got[0]["run_id"], "last_seq": got[-1]["seq"]}
            await ws.send(json.dumps(resume))
            while got[-1]["type"] != "agent_completed":
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert seqs(got) == list(range(1, len(got) + 1))
        assert got[0]["type"] == "agent_started"
        assert got[-1]["data"]["status"] in {"ok", "degraded"}
        assert isinstance(got[-1]["data"]["output"], str)
        # asking again after the end: the missed events are none, the socket stays usable
        async with connect(f"ws://{b}/v1/runs/ws") as ws:
            await ws.send(json.dumps({"resume": "no-such-run", "last_seq": 0}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert refused["type"] == "resume_failed" and refused["reason"] == "unknown"


async def test_runs_websocket_answers_bad_frames_and_keeps_the_socket_open(
    tmp_path: Path, redis_url: str
) -> None:
    async with replica(tmp_path, redis_url, "a") as a, connect(f"ws://{a}/v1/runs/ws") as ws:
        answers = []
        for frame in ("not json", "[" * 5000, b"\x00binary", '{"resume": ""}'):
            await ws.send(frame)
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert [(e["type"], e["reason"]) for e in answers] == [
            ("error", "invalid_json"),
            ("error", "invalid_json"),
            ("error", "binary_frame"),
            ("error", "invalid_request"),
        ]
        await ws.send(json.dumps({"user_id": "u1", "message": "still here?"}))
        got = [json.loads(await asyncio.wait_for(ws.recv(), 10))]
        while got[-1]["type"] != "agent_completed":
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert seqs(got) == list(range(1, len(got) + 1))


async def sse_events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int | None = None
) -> tuple[int, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            return response.status_code, events
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
                continue
            if "data" in fields and "id" in fields:
                event = json.loads(fields["data"])
                assert int(fields["id"]) == event["seq"] and fields.get("event") == event["type"]
                events.append(event)
                if event["type"] == "agent_completed" or len(events) == limit:
                    break
            fields = {}
    return 200, events


async def test_sse_client_resumes_with_last_event_id_on_the_other_replica(
    tmp_path: Path, redis_url: str
) -> None:
    async with (
        replica(tmp_path, redis_url, "a") as a,
        replica(tmp_path, redis_url, "b") as b,
        httpx.AsyncClient(timeout=10) as client,
    ):
        started = await client.post(
            f"http://{a}/v1/runs", json={"user_id": "u2", "message": "hello there"}
        )
        assert started.status_code == 202
        path = started.json()["events"]
        status, first = await sse_events(client, f"http://{a}{path}", {}, limit=2)
        assert status == 200 and seqs(first) == [1, 2]
        last = str(first[-1]["seq"])
        status, rest = await sse_events(client, f"http://{b}{path}", {"Last-Event-ID": last})
        got = first + rest
        assert status == 200
        assert seqs(got) == list(range(1, len(got) + 1))
        assert got[-1]["type"] == "agent_completed"
        final = str(got[-1]["seq"])
        status, _ = await sse_events(client, f"http://{a}{path}", {"Last-Event-ID": final})
        assert status == 204  # an EventSource stops reconnecting
        status, _ = await sse_events(client, f"http://{b}/v1/runs/nope/events", {})
        assert status == 404
