"""The pure ASGI middleware: degraded-mode header, per-request flags, 503 on critical rejection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.testclient import TestClient

from netra_resilience import (
    BrokenCircuitError,
    Degradation,
    IsolatedCircuitError,
    RateLimitRejectedError,
    Resilience,
    current_degradation,
)
from netra_resilience.context import current_context
from netra_resilience.health import Dependency
from netra_resilience.integrations.fastapi import CurrentDegradation, get_degradation, install
from netra_resilience.integrations.fastapi._middleware import ResilienceMiddleware

FAKE_KEY = "sk-proj-FAKE0123456789abcdefSECRET"


def registry() -> list[Dependency]:
    return [
        Dependency("postgres", "critical"),
        Dependency("llm", "important"),
        Dependency("analytics", "optional"),
    ]


def client(app: Any, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def make_app() -> tuple[FastAPI, dict[str, Degradation]]:
    app = FastAPI()
    seen: dict[str, Degradation] = {}

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/async")
    async def async_route(degradation: CurrentDegradation) -> dict[str, str]:
        degradation.mark("llm", "stale_cache")
        current = current_degradation()
        assert current is degradation
        current.mark("analytics", "skipped")
        return degradation.as_dict()

    @app.get("/sync")
    def sync_route() -> dict[str, str]:  # runs in the threadpool
        degradation = current_degradation()
        assert degradation is not None
        degradation.mark("llm", "fallback")
        return degradation.as_dict()

    @app.get("/background")
    async def background(
        tasks: BackgroundTasks, degradation: CurrentDegradation
    ) -> dict[str, bool]:
        seen["background"] = degradation

        def later() -> None:
            later_degradation = current_degradation()
            assert later_degradation is degradation  # same record, after the response
            later_degradation.mark("analytics", "skipped")

        tasks.add_task(later)
        return {"ok": True}

    @app.get("/stream")
    async def stream(degradation: CurrentDegradation) -> StreamingResponse:
        degradation.mark("llm", "stale_cache")  # before the response starts: reaches the header
        seen["stream"] = degradation

        async def body() -> AsyncIterator[str]:
            yield "data: token\n\n"
            degradation.mark("analytics", "skipped")  # mid-stream: too late for the header
            yield f"data: {json.dumps({'degraded': degradation.as_dict()})}\n\n"  # final event

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/critical")
    async def critical(degradation: CurrentDegradation) -> None:
        degradation.mark("postgres", "circuit_open")
        raise BrokenCircuitError(f"open; key={FAKE_KEY}", retry_after=7.2, dependency="postgres")

    @app.get("/isolated")
    async def isolated() -> None:
        raise IsolatedCircuitError(dependency="postgres")

    @app.get("/optional-rejection")
    async def optional_rejection() -> None:
        raise RateLimitRejectedError(retry_after=1.0, dependency="analytics")

    @app.get("/unknown-rejection")
    async def unknown_rejection() -> None:
        raise BrokenCircuitError(dependency="not-registered")

    @app.get("/late-rejection")
    async def late_rejection() -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            yield "partial"
            raise BrokenCircuitError(dependency="postgres")

        return StreamingResponse(body())

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        degradation = get_degradation(websocket)
        degradation.mark("llm", "cached")  # before accept: in the accept headers
        await websocket.accept()
        await websocket.receive_text()
        context = current_context()
        assert context is not None and context.degradation is degradation
        degradation.mark("analytics", "skipped")
        await websocket.send_json(degradation.as_dict())
        await websocket.close()

    return app, seen


@pytest.fixture
def app_and_seen() -> tuple[FastAPI, dict[str, Degradation]]:
    app, seen = make_app()
    install(app, Resilience(dependencies=registry()), health_path=None)
    return app, seen


async def test_no_header_when_nothing_degraded(app_and_seen: tuple[FastAPI, Any]) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.get("/ok")
    assert response.status_code == 200
    assert "netra-degraded" not in response.headers


async def test_async_route_marks_reach_the_header(app_and_seen: tuple[FastAPI, Any]) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.get("/async")
    assert response.headers["Netra-Degraded"] == "llm=stale_cache, analytics=skipped"
    assert response.json() == {"llm": "stale_cache", "analytics": "skipped"}


async def test_sync_route_marks_reach_the_header(app_and_seen: tuple[FastAPI, Any]) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.get("/sync")
    assert response.headers["Netra-Degraded"] == "llm=fallback"


async def test_background_task_marks_the_record_not_the_header(
    app_and_seen: tuple[FastAPI, Any],
) -> None:
    app, seen = app_and_seen
    async with client(app) as http:
        response = await http.get("/background")
    assert "netra-degraded" not in response.headers  # headers were sent before the task ran
    assert seen["background"].as_dict() == {"analytics": "skipped"}  # ...but it landed


async def test_streaming_header_before_start_and_final_event_after(
    app_and_seen: tuple[FastAPI, Any],
) -> None:
    app, seen = app_and_seen
    async with client(app) as http:
        response = await http.get("/stream")
    assert response.headers["Netra-Degraded"] == "llm=stale_cache"
    assert '"analytics": "skipped"' in response.text  # reported in the stream's last event
    assert seen["stream"].header_value() == "llm=stale_cache, analytics=skipped"


def test_websocket_gets_a_degradation(app_and_seen: tuple[FastAPI, Any]) -> None:
    with TestClient(app_and_seen[0]) as test_client, test_client.websocket_connect("/ws") as ws:
        assert (b"netra-degraded", b"llm=cached") in (ws.extra_headers or [])
        ws.send_text("go")
        assert ws.receive_json() == {"llm": "cached", "analytics": "skipped"}


async def test_critical_rejection_is_a_503_problem(app_and_seen: tuple[FastAPI, Any]) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.get("/critical")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "8"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Netra-Degraded"] == "postgres=circuit_open"
    body = response.json()
    assert body == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The dependency 'postgres' is temporarily unavailable.",
        "dependency": "postgres",
    }
    assert FAKE_KEY not in response.text and "open;" not in response.text


async def test_isolated_critical_uses_default_retry_after(
    app_and_seen: tuple[FastAPI, Any],
) -> None:
    async with client(app_and_seen[0]) as http:
        response = await http.get("/isolated")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("path", ["/optional-rejection", "/unknown-rejection"])
async def test_non_critical_rejection_stays_an_error(
    app_and_seen: tuple[FastAPI, Any], path: str
) -> None:
    async with client(app_and_seen[0], raise_app_exceptions=False) as http:
        response = await http.get(path)
    assert response.status_code == 500  # it escaped its fallback: a bug, not an outage


async def test_rejection_after_the_response_started_is_not_rewritten(
    app_and_seen: tuple[FastAPI, Any],
) -> None:
    async with client(app_and_seen[0]) as http:
        # Starlette's handler wrapper refuses too; the server aborts the half-sent stream.
        with pytest.raises(RuntimeError, match="response already started"):
            await http.get("/late-rejection")
    bare = with_state(ResilienceMiddleware(late_bare_app))
    async with client(bare) as http:
        with pytest.raises(BrokenCircuitError):  # the bare middleware re-raises it unchanged
            await http.get("/")


async def test_503_passes_through_cors_when_produced_by_the_handler() -> None:
    app, _ = make_app()
    app.add_middleware(
        CORSMiddleware, allow_origins=["https://ui.example"], expose_headers=["Netra-Degraded"]
    )
    install(app, Resilience(dependencies=registry()), health_path=None)
    async with client(app) as http:
        response = await http.get("/critical", headers={"Origin": "https://ui.example"})
    assert response.status_code == 503
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    assert response.headers["access-control-expose-headers"] == "Netra-Degraded"


async def test_concurrent_requests_never_share_flags() -> None:
    app = FastAPI()
    arrived = [asyncio.Event(), asyncio.Event()]
    go = asyncio.Event()

    @app.get("/mark/{index}")
    async def mark(index: int, degradation: CurrentDegradation) -> dict[str, str]:
        arrived[index].set()
        await go.wait()  # both requests are in flight at once
        current = current_degradation()
        assert current is degradation
        current.mark(f"dep{index}", "timeout")
        await asyncio.sleep(0)
        return degradation.as_dict()

    install(app, Resilience(dependencies=registry()), health_path=None)

    async def release() -> None:
        await asyncio.gather(*(event.wait() for event in arrived))
        go.set()

    async with client(app) as http:
        first, second, _ = await asyncio.gather(http.get("/mark/0"), http.get("/mark/1"), release())
    assert first.headers["Netra-Degraded"] == "dep0=timeout" and first.json() == {"dep0": "timeout"}
    assert second.headers["Netra-Degraded"] == "dep1=timeout" and second.json() == {
        "dep1": "timeout"
    }
    assert current_context() is None  # nothing leaks into the caller either


# -- the middleware on its own, around a bare ASGI app ---------------------------------
async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    degradation = scope["state"]["degradation"]
    assert current_degradation() is degradation
    assert scope["state"]["resilience_context"].degradation is degradation
    assert scope["state"]["from_lifespan"] == "kept"
    path = scope["path"]
    if path == "/reject":
        raise BrokenCircuitError(dependency="anything")
    if path == "/mark":
        degradation.mark("cache", "stale_cache")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def late_bare_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise BrokenCircuitError(dependency="postgres")


def with_state(app: Any) -> Any:
    async def outer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"] = {"from_lifespan": "kept"}  # what a server copies from lifespan state
        await app(scope, receive, send)

    return outer


async def test_bare_asgi_header_name_is_configurable() -> None:
    app = with_state(ResilienceMiddleware(bare_app, header_name="Degraded-Mode"))
    async with client(app) as http:
        marked = await http.get("/mark")
        plain = await http.get("/plain")
    assert marked.headers["degraded-mode"] == "cache=stale_cache"
    assert marked.headers["x-app"] == "1"
    assert "degraded-mode" not in plain.headers


async def test_bare_asgi_without_registry_treats_every_rejection_as_critical() -> None:
    app = with_state(ResilienceMiddleware(bare_app))
    async with client(app) as http:
        response = await http.get("/reject")
    assert response.status_code == 503
    assert response.json()["dependency"] == "anything"
    assert response.headers["retry-after"] == "5"


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert "state" not in scope

    await ResilienceMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_get_degradation_without_middleware_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(degradation: CurrentDegradation) -> None:
        return None

    with (
        TestClient(app, raise_server_exceptions=True) as test_client,
        pytest.raises(RuntimeError, match="install"),
    ):
        test_client.get("/x")


def test_critical_rejection_on_a_websocket_closes_with_1013() -> None:
    from starlette.websockets import WebSocketDisconnect

    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        raise BrokenCircuitError(dependency="postgres")

    install(app, Resilience(dependencies=registry()), health_path=None)
    with (
        TestClient(app) as test_client,
        test_client.websocket_connect("/ws") as socket,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        socket.receive_text()
    assert closed.value.code == 1013
