"""The example backend's edge: bad WebSocket frames, hang-ups mid-run, aborted bodies, bad ids."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from examples.agent_backend import create_app
from examples.agent_backend.app import MAX_FRAME_BYTES
from netra_resilience import Resilience
from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import chat, running, settings_for

# Each frame, sent as text unless bytes; every one must be answered by one error event.
BAD_FRAMES: list[tuple[str, str | bytes, str]] = [
    ("not json", "hello there", "invalid_json"),
    ("truncated json", '{"user_id": "u1", "message": ', "invalid_json"),
    ("binary", b'{"user_id": "u1", "message": "hi"}', "binary_frame"),
    ("binary garbage", b"\x00\xff\xfe\x80", "binary_frame"),
    ("nested array", "[" * 100_000 + "]" * 100_000, "frame_too_large"),
    ("nested within the bound", "[" * 20_000 + "]" * 20_000, "invalid_json"),
    ("nested object", '{"user_id": ' + '{"a": ' * 5_000 + "1" + "}" * 5_000 + "}", "invalid_json"),
    ("huge frame", json.dumps({"user_id": "u1", "message": "x" * 1_000_000}), "frame_too_large"),
    ("just over the bound", "x" * (MAX_FRAME_BYTES + 1), "frame_too_large"),
    ("over the bound in UTF-8 only", "é" * (MAX_FRAME_BYTES // 2 + 1), "frame_too_large"),
    ("raw control characters", '{"user_id": "u\x01", "message": "\x07"}', "invalid_json"),
    ("NUL alone", "\x00", "invalid_json"),
    ("lone surrogate escape", '{"user_id": "u1", "message": "\\ud800"}', "invalid_json"),
    ("NUL in the user id", '{"user_id": "u\\u0000", "message": "hi"}', "invalid_request"),
    ("escape in the user id", '{"user_id": "u\\u001b[31m", "message": "hi"}', "invalid_request"),
    ("bidi override in the id", '{"user_id": "u\\u202e1", "message": "hi"}', "invalid_request"),
    ("oversized user id", json.dumps({"user_id": "u" * 129, "message": "hi"}), "invalid_request"),
    ("NUL in the message", '{"user_id": "u1", "message": "a\\u0000b"}', "invalid_request"),
    ("wrong types", '{"user_id": 1, "message": ["hi"]}', "invalid_request"),
    ("a JSON list", "[1, 2, 3]", "invalid_request"),
    ("empty text", "", "invalid_json"),
]


def no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]


def receive_run(ws: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != "agent_completed":
        events.append(ws.receive_json())
    return events


def test_every_bad_frame_gets_one_error_event_and_the_socket_stays_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(settings_for(tmp_path))
    with TestClient(app) as client, client.websocket_connect("/v1/chat/ws") as ws:
        for name, frame, reason in BAD_FRAMES:
            if isinstance(frame, bytes):
                ws.send_bytes(frame)
            else:
                ws.send_text(frame)
            event = ws.receive_json()
            assert event["type"] == "error", name
            assert event["reason"] == reason, name
            assert len(json.dumps(event)) < 500, name  # the input is never echoed
        # Still open, and still serving: a good turn after all of them.
        ws.send_json({"user_id": "u1", "message": "hi"})
        events = receive_run(ws)
        assert events[0]["type"] == "agent_started"
        assert events[-1]["status"] == "ok"
    no_error_logged(caplog)


def test_a_burst_of_bad_frames_mid_run_is_answered_in_order(tmp_path: Path) -> None:
    with (
        TestClient(create_app(settings_for(tmp_path))) as client,
        client.websocket_connect("/v1/chat/ws") as ws,
    ):
        ws.send_json({"user_id": "u1", "message": "hi"})
        for _ in range(20):  # more than the pending bound: read with back-pressure, not dropped
            ws.send_bytes(b"\x01")
        ws.send_json({"user_id": "u1", "message": "again"})
        first = receive_run(ws)
        errors = [ws.receive_json() for _ in range(20)]
        second = receive_run(ws)
    assert first[-1]["status"] == second[-1]["status"] == "ok"
    assert [e["reason"] for e in errors] == ["binary_frame"] * 20


class ScriptedSocket:
    """One WebSocket connection driven by hand over ASGI, on the test's own event loop."""

    def __init__(self, app: Any, *, fail_sends_after: int | None = None) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.fail_sends_after = fail_sends_after
        self.first_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            events = [m for m in self.sent if m["type"] == "websocket.send"]
            if self.fail_sends_after is not None and len(events) >= self.fail_sends_after:
                raise OSError("the client is gone")  # as uvicorn's ClientDisconnected
            self.first_event.set()
        self.sent.append(message)

    def start(self) -> None:
        scope = {
            "type": "websocket",
            "path": "/v1/chat/ws",
            "raw_path": b"/v1/chat/ws",
            "query_string": b"",
            "headers": [],
            "scheme": "ws",
            "server": ("backend", 80),
            "client": ("127.0.0.1", 5000),
            "subprotocols": [],
            "asgi": {"version": "3.0"},
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self._send))

    def say(self, payload: Any) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(payload)})

    def hang_up(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]


async def finished_run(sink: list[Any], done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(20_000):
        found = [e for e in sink if e["type"] == "agent_completed" and done(e)]
        if found:
            return dict(found[-1])
        await asyncio.sleep(0)
    raise AssertionError(f"no agent_completed in {[e['type'] for e in sink]}")


async def test_hang_up_mid_run_cancels_it_quietly_and_hooks_get_the_final_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    app = create_app(settings_for(tmp_path), resilience=Resilience(clock=clock))
    async with app.router.lifespan_context(app):
        backend = app.state.backend
        backend.resilience.chaos.inject_latency("llm", 30.0)  # the run waits on the provider
        socket = ScriptedSocket(app)
        socket.start()
        socket.say({"user_id": "u1", "message": "hi"})
        await asyncio.wait_for(socket.first_event.wait(), 5)
        assert socket.events()[0]["type"] == "agent_started"
        run_id = socket.events()[0]["run_id"]
        socket.hang_up()
        assert socket.task is not None
        await asyncio.wait_for(socket.task, 5)  # returns: no exception escapes the app
        final = await finished_run(backend.hook_sinks.analytics, lambda e: e["run_id"] == run_id)
    assert final["data"]["status"] == "failed"
    assert final["data"]["cancelled"] is True
    assert final["data"]["error"]["type"] == "CancelledError"
    no_error_logged(caplog)


async def test_client_gone_while_streaming_the_run_finishes_and_nothing_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The server did not see the close yet: sends fail (OSError, then Starlette's
    # WebSocketDisconnected RuntimeError), the run completes, its final event reaches the hooks.
    caplog.set_level(logging.DEBUG)
    app = create_app(settings_for(tmp_path), resilience=Resilience(clock=FakeClock()))
    async with app.router.lifespan_context(app):
        backend = app.state.backend
        socket = ScriptedSocket(app, fail_sends_after=1)
        socket.start()
        socket.say({"user_id": "u1", "message": "hi"})
        socket.say({"user_id": "u1", "message": "a second turn, queued behind the first"})
        await asyncio.wait_for(socket.first_event.wait(), 5)
        run_id = socket.events()[0]["run_id"]
        final = await finished_run(backend.hook_sinks.analytics, lambda e: e["run_id"] == run_id)
        socket.hang_up()
        assert socket.task is not None
        await asyncio.wait_for(socket.task, 5)
    assert final["data"]["status"] == "ok"
    assert len(socket.events()) == 1  # only agent_started got out
    no_error_logged(caplog)


async def test_client_aborting_mid_body_is_a_quiet_499(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(settings_for(tmp_path), resilience=Resilience(clock=FakeClock()))
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"user_id": "u1", "mess', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/chat",
        "raw_path": b"/v1/chat",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"4000")],
        "scheme": "http",
        "server": ("backend", 80),
        "client": ("127.0.0.1", 5000),
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)  # nothing raised
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
    no_error_logged(caplog)


@pytest.mark.parametrize(
    ("user_id", "field"),
    [
        ("u\x00", "user_id"),
        ("u\x1b[2J", "user_id"),
        ("u\u202e", "user_id"),
        ("u" * 129, "user_id"),
        ("", "user_id"),
    ],
)
async def test_invalid_user_ids_get_a_422_and_never_reach_the_stores(
    tmp_path: Path, user_id: str, field: str
) -> None:
    async with running(settings_for(tmp_path), FakeClock()) as client:
        response = await chat(client, "hi", user=user_id)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert [d["loc"][-1] for d in detail] == [field]
        assert user_id not in response.text or not user_id  # the input is not echoed
        # The store is untouched: the next user is served and has only their own turn.
        ok = await chat(client, "hi", user="u2")
        assert ok.status_code == 200
        assert ok.json()["status"] == "ok"


async def test_an_oversized_body_is_refused_with_413(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path), FakeClock()) as client:
        body = json.dumps({"user_id": "u1", "message": "x" * (MAX_FRAME_BYTES + 10)})
        response = await client.post("/v1/chat", content=body)
    assert response.status_code == 413
