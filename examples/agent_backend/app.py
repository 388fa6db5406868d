"""The FastAPI app: ``create_app(Settings.from_env())``.

* ``POST /v1/chat`` ``{"user_id", "message"}`` -> ``{"answer", "status", "degraded", "events"}``
  (and the ``Netra-Degraded`` header when something degraded);
* ``WS /v1/chat/ws``: send the same JSON, receive the run's events, ``agent_completed`` last;
  a frame that is not that JSON (not JSON, binary, nested past 200 levels, over
  ``MAX_FRAME_BYTES``, a bad user id) gets ``{"type": "error", "reason", "error"}`` and the
  socket stays open; a client that hangs up mid-run cancels its run (the hooks still get the
  final ``agent_completed``);
* ``GET /health/live``, ``/health/ready``, ``/health`` (``application/health+json``);
* ``/demo/faults`` (demo mode only): switch faults on and off per dependency.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, field_validator

from examples.agent_backend.agent import Agent, Conversations
from examples.agent_backend.config import Settings
from examples.agent_backend.faults import faults_router
from examples.agent_backend.runs import ResumableRuns, runs_router
from examples.agent_backend.wiring import (
    AuthService,
    HookSinks,
    LlmService,
    event_hooks,
    external_tool,
    llm_service,
    register_engine_dependencies,
    session_store,
)
from netra_resilience import (
    Degradation,
    ExecutionRejectedError,
    Resilience,
    RunRequest,
    current_degradation,
)
from netra_resilience.engine import ResilientEngine, RunResult
from netra_resilience.integrations.fastapi import CurrentDegradation, install, serve_frames
from netra_resilience.integrations.sqlalchemy import SqlSessionBackend

FAILED_MESSAGE = "Sorry, I could not answer this time. Please try again."
MAX_FRAME_BYTES = 131_072
"""The most one chat request may hold, in bytes, as an HTTP body or a WebSocket text frame
(128 KiB: 8000 characters written as ``\\uXXXX`` surrogate pairs still fit)."""

# Text that no store can keep: NUL (PostgreSQL rejects it) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ChatRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=8000)

    @field_validator("user_id")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        # A key for Redis, PostgreSQL and logs: no control, format or unpaired characters.
        if not value.isprintable():
            raise ValueError("user_id must be printable text (no control characters)")
        return value

    @field_validator("message")
    @classmethod
    def _storable_message(cls, value: str) -> str:
        if _UNSTORABLE.search(value):
            raise ValueError("message must not hold NUL or unpaired surrogate characters")
        return value


def request_errors(exc: ValidationError) -> list[Any]:
    """What was wrong, never the input itself (it may be huge or carry secrets)."""
    return list(exc.errors(include_url=False, include_input=False, include_context=False))


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 past ``MAX_FRAME_BYTES`` (never buffered whole)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FRAME_BYTES:
            raise HTTPException(413, f"a chat request may hold at most {MAX_FRAME_BYTES} bytes")
    return bytes(body)


class ChatResponse(BaseModel):
    answer: str
    status: str
    degraded: dict[str, str]
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class Backend:
    """Everything the app owns (no globals): reachable as ``app.state.backend``."""

    settings: Settings
    resilience: Resilience
    engine: ResilientEngine
    auth: AuthService
    llm: LlmService
    database: SqlSessionBackend
    hook_sinks: HookSinks
    runs: ResumableRuns


def build_backend(settings: Settings, resilience: Resilience) -> Backend:
    """Every dependency behind its resilience, registered with ``resilience`` with its
    criticality (``/health`` weighs them; the runtime closes them on shutdown)."""
    resilience.chaos.enabled = settings.demo_mode  # fault switches: demo mode only
    llm = llm_service(settings, resilience)  # llm: important
    store, database = session_store(settings, resilience)  # database: critical, redis: optional
    auth = AuthService(settings, resilience)  # auth: critical
    sinks = HookSinks()
    hooks = event_hooks(settings, resilience, sinks)  # analytics: optional, monitoring: monitoring
    tool = external_tool(settings, resilience)  # tool: optional
    runs = resilience.closing(ResumableRuns(settings, resilience, database))  # event log, leases
    engine = resilience.engine(
        Agent(llm, Conversations(store)),
        hooks=hooks,
        tools=[tool],
        layers=[runs.leases.layer],
        event_log=runs.leases.log,
    )
    register_engine_dependencies(resilience, engine, hooks, tool)
    return Backend(settings, resilience, engine, auth, llm, database, sinks, runs)


def client_event(event: Mapping[str, Any], outer: Degradation | None) -> dict[str, Any]:
    """An engine event as the client sees it: ``degraded`` is the ``{name: reason}`` map of the
    whole request (auth marks happen before the run), the final event carries ``status``."""
    degraded = dict(outer.as_dict()) if outer is not None else {}
    degraded.update(event.get("degradation") or {})
    data = dict(event.get("data") or {})
    out: dict[str, Any] = {
        "type": event["type"],
        "run_id": event["run_id"],
        "seq": event["seq"],
        "degraded": degraded,
        "data": data,
    }
    if event["type"] == "agent_completed":
        out["status"] = data.get("status", "failed")
        if out["status"] == "ok" and degraded:
            out["status"] = "degraded"
    return out


def outcome_of(result: RunResult, degradation: Degradation) -> tuple[str, str]:
    for dependency, reason in result.degradation.items():
        degradation.mark(dependency, reason)
    if not result.ok or not isinstance(result.output, str):
        return FAILED_MESSAGE, "failed"
    return result.output, "degraded" if degradation else "ok"


def create_app(
    settings: Settings | None = None, *, resilience: Resilience | None = None
) -> FastAPI:
    """The example agent backend (demo switches only when ``settings.demo_mode``).

    ``resilience``: the runtime to build on (tests pass ``Resilience(clock=FakeClock())``,
    the one place a clock is given); a new one by default."""
    settings = settings or Settings.from_env()
    backend = build_backend(settings, resilience or Resilience())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.database.create_schema()
        await backend.runs.start()
        yield  # install() runs the runtime inside: it closes what it holds on shutdown

    app = FastAPI(title="netra-resilience example agent backend", lifespan=lifespan)
    app.state.backend = backend

    @app.post(
        "/v1/chat",
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": ChatRequest.model_json_schema()}}
            }
        },
    )
    async def chat(request: Request, degradation: CurrentDegradation) -> ChatResponse:
        # Parsed from the raw body whatever the Content-Type, so `curl -d '{...}'` (which sends
        # application/x-www-form-urlencoded) works as the README shows.
        # A client that leaves mid-body raises ClientDisconnect here: install() answers it 499.
        try:
            body = ChatRequest.model_validate_json(await read_body(request))
        except ValidationError as exc:
            raise RequestValidationError(request_errors(exc)) from None
        await backend.auth.verify(body.user_id)  # a rejection becomes a 503 (auth is critical)
        events: list[dict[str, Any]] = []

        async def collect(event: dict[str, Any]) -> None:
            events.append(client_event(event, degradation))

        result = await backend.engine.run(RunRequest(body.message, user_id=body.user_id), collect)
        answer, status = outcome_of(result, degradation)
        return ChatResponse(
            answer=answer, status=status, degraded=degradation.as_dict(), events=events
        )

    @app.websocket("/v1/chat/ws")
    async def chat_ws(websocket: WebSocket) -> None:
        await websocket.accept()

        async def turn(text: str) -> None:
            await _ws_turn(websocket, text)

        # Bad frames answered, the socket kept open, a hang-up mid-run cancels the run.
        await serve_frames(websocket, turn, max_frame_bytes=MAX_FRAME_BYTES)

    async def _ws_turn(websocket: WebSocket, text: str) -> None:
        try:
            body = ChatRequest.model_validate_json(text)
        except ValidationError as exc:
            errors = request_errors(exc)
            await websocket.send_json(
                {
                    "type": "error",
                    "reason": "invalid_json"
                    if errors and errors[0]["type"] == "json_invalid"
                    else "invalid_request",
                    "error": "expected {user_id, message}",
                    "fields": sorted({".".join(map(str, e["loc"])) for e in errors if e["loc"]}),
                }
            )
            return
        outer = current_degradation()
        if outer is not None:  # one socket, many turns: each turn starts clean
            for name in list(outer):
                outer.clear(name)
        try:
            await backend.auth.verify(body.user_id)
        except ExecutionRejectedError as exc:
            await websocket.send_json(
                {
                    "type": "agent_completed",
                    "run_id": None,
                    "seq": 1,
                    "status": "failed",
                    "degraded": {exc.dependency or "auth": "unavailable"},
                    "data": {"status": "failed", "error": {"type": "unavailable"}},
                }
            )
            return

        async def send(event: dict[str, Any]) -> None:
            await websocket.send_json(client_event(event, outer))

        request = RunRequest(body.message, user_id=body.user_id, metadata={"stream": True})
        await backend.engine.run(request, send)

    app.include_router(runs_router(backend.engine, backend.auth, backend.runs.leases.log))
    if settings.demo_mode:
        app.include_router(faults_router(backend.resilience))

    # The status page is internals, like /health's detail: shown in demo mode only here; a
    # production app passes its operator check as `details`.
    install(
        app,
        backend.resilience,
        details=settings.demo_mode,
        status_path="/status",
        status_demo=settings.demo_mode,
    )
    return app
