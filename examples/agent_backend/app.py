"""The FastAPI app: ``create_app(Settings.from_env())``.

* ``POST /v1/chat`` ``{"user_id", "message"}`` -> ``{"answer", "status", "degraded", "events"}``
  (and the ``Netra-Degraded`` header when something degraded);
* ``WS /v1/chat/ws``: send the same JSON, receive the run's events, ``agent_completed`` last;
* ``GET /health/live``, ``/health/ready``, ``/health`` (``application/health+json``);
* ``/demo/faults`` (demo mode only): switch faults on and off per dependency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from examples.agent_backend.agent import Agent, Conversations
from examples.agent_backend.config import Settings
from examples.agent_backend.faults import faults_router
from examples.agent_backend.providers import (
    HttpTool,
    LlmProvider,
    OpenAIProvider,
    SimulatedLlm,
    SimulatedTool,
)
from examples.agent_backend.wiring import (
    SIMULATED_TOOL_ENDPOINTS,
    AuthService,
    LlmService,
    chaos_pipeline,
    clock_or_default,
    hook_sender,
    llm_pipeline,
    session_store,
    tool_pool,
)
from netra_resilience import Degradation, ExecutionRejectedError, Resilience, current_degradation
from netra_resilience.chaos import ChaosControl
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.clock import Clock
from netra_resilience.engine import (
    Hook,
    HooksLayer,
    ResilientEngine,
    RunRequest,
    RunResult,
    Tool,
    ToolsLayer,
    wrap_engine,
)
from netra_resilience.health import Dependency, ServiceInfo, ServiceRegistry
from netra_resilience.integrations.fastapi import CurrentDegradation, install
from netra_resilience.llm import StreamPolicy
from netra_resilience.routing import EndpointPool

FAILED_MESSAGE = "Sorry, I could not answer this time. Please try again."


class ChatRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=8000)


class ChatResponse(BaseModel):
    answer: str
    status: str
    degraded: dict[str, str]
    events: list[dict[str, Any]]


@dataclass
class Backend:
    """Everything the app owns (no globals): reachable as ``app.state.backend``."""

    settings: Settings
    clock: Clock
    chaos: ChaosControl
    resilience: Resilience
    registry: ServiceRegistry
    engine: ResilientEngine
    auth: AuthService
    llm: LlmService
    conversations: Conversations
    closers: list[Any] = field(default_factory=list)
    analytics_events: list[Mapping[str, Any]] = field(default_factory=list)
    monitoring_events: list[Mapping[str, Any]] = field(default_factory=list)


def build_backend(settings: Settings, *, clock: Clock | None = None) -> Backend:
    """Wire every dependency behind its resilience (see ``wiring.py`` for the table)."""
    the_clock = clock_or_default(clock)
    chaos = ChaosControl(enabled=settings.demo_mode)

    provider: LlmProvider
    closers: list[Any] = []
    if settings.openai_api_key is not None:
        openai_provider = OpenAIProvider(
            api_key=settings.openai_api_key, base_url=settings.openai_base_url, clock=the_clock
        )
        closers.append(openai_provider)
        provider = openai_provider
    else:
        provider = SimulatedLlm(
            clock=the_clock,
            latency=settings.simulated_latency,
            between_chunks=chaos_pipeline("llm_stream", chaos, the_clock),
        )
    llm = LlmService(
        provider,
        llm_pipeline(settings, the_clock),
        chaos_pipeline("llm", chaos, the_clock),
        settings.llm_model,
        stream_policy=StreamPolicy(
            first_token_timeout=settings.llm_timeout, idle_timeout=settings.llm_timeout
        ),
    )

    store, database, pool = session_store(settings, chaos, the_clock)
    closers.append(store)
    closers.append(pool)

    if settings.tool_url is None:
        tool_backend: Any = SimulatedTool(clock=the_clock, latency=settings.simulated_latency)
        endpoints: list[Any] = list(SIMULATED_TOOL_ENDPOINTS)
    else:
        tool_backend = HttpTool(settings.tool_url)
        closers.append(tool_backend)
        endpoints = [tool_backend.endpoint]
    endpoints_pool: EndpointPool = tool_pool(endpoints, settings, chaos, the_clock)
    tool_chaos = chaos_pipeline("tool", chaos, the_clock)

    async def call_tool(query: str) -> Any:
        async def on(endpoint: Any) -> Any:
            return await tool_chaos.execute(tool_backend.fetch, endpoint, query)

        return await endpoints_pool.execute(on)

    analytics_events: list[Mapping[str, Any]] = []
    # Hooks and the tool: open after half of at least 3 calls in the window failed, for the
    # configured break (NETRA_BREAKER_WINDOW, NETRA_BREAKER_SECONDS).
    breaker = CircuitBreakerOptions(
        failure_ratio=0.5,
        minimum_throughput=3,
        sampling_duration=settings.breaker_window,
        break_duration=settings.breaker_seconds,
    )
    monitoring_events: list[Mapping[str, Any]] = []
    hooks = [
        Hook(
            "analytics",
            hook_sender(chaos_pipeline("analytics", chaos, the_clock), analytics_events),
            timeout=0.5,
            criticality="optional",
            breaker=breaker,
        ),
        Hook(
            "monitoring",
            hook_sender(chaos_pipeline("monitoring", chaos, the_clock), monitoring_events),
            timeout=0.5,
            criticality="monitoring",
            breaker=breaker,
        ),
    ]
    tools = [
        Tool(
            "tool",
            call_tool,
            rate=20,
            burst=20,
            timeout=3.0,
            max_attempts=2,
            retry_delay=settings.retry_delay,
            retry_after_cap=1.0,
            breaker=breaker,
        )
    ]
    conversations = Conversations(store)
    engine = wrap_engine(Agent(llm, conversations), hooks=hooks, tools=tools, clock=the_clock)

    auth = AuthService(clock=the_clock, chaos=chaos_pipeline("auth", chaos, the_clock))
    hook_layer = engine.layer(HooksLayer)
    dependencies = [
        Dependency("llm", "important", pipeline=llm.pipeline),
        Dependency("tool", "optional", pipeline=engine.layer(ToolsLayer).pipeline("tool")),
        Dependency("database", "critical", check=pool.check, component_type="datastore"),
        Dependency("auth", "critical", strategies=auth.strategies(settings)),
        Dependency("analytics", "optional", breaker=hook_layer.breaker("analytics")),
        Dependency("monitoring", "monitoring", breaker=hook_layer.breaker("monitoring")),
    ]
    if settings.redis_url is not None:
        dependencies.append(
            Dependency("redis", "optional", check=store.check_primary, component_type="datastore")
        )
    resilience = Resilience(
        clock=the_clock, dependencies=dependencies, probe_interval=2.0, check_timeout=1.5
    )
    # The runtime closes these on shutdown, in reverse order (the engine drains its hooks).
    for closer in [*closers, database, engine]:
        if hasattr(closer, "aclose"):
            resilience.closing(closer)
    registry = resilience.registry
    auth.pipeline = registry.pipeline("auth")
    return Backend(
        settings=settings,
        clock=the_clock,
        chaos=chaos,
        resilience=resilience,
        registry=registry,
        engine=engine,
        auth=auth,
        llm=llm,
        conversations=conversations,
        closers=[*closers, database],
        analytics_events=analytics_events,
        monitoring_events=monitoring_events,
    )


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


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The example agent backend (demo switches only when ``settings.demo_mode``)."""
    settings = settings or Settings.from_env()
    backend = build_backend(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for closer in backend.closers:
            create = getattr(closer, "create_schema", None)
            if create is not None:
                await create()
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
        try:
            body = ChatRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(
                exc.errors(include_url=False, include_input=False)
            ) from None
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
        try:
            while True:
                raw = await websocket.receive_json()
                await _ws_turn(websocket, raw)
        except WebSocketDisconnect:
            return

    async def _ws_turn(websocket: WebSocket, raw: Any) -> None:
        try:
            body = ChatRequest.model_validate(raw)
        except ValidationError:
            await websocket.send_json({"type": "error", "error": "expected {user_id, message}"})
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

    if settings.demo_mode:
        app.include_router(faults_router(backend.chaos))

    install(
        app,
        backend.resilience,
        details=settings.demo_mode,
        service=ServiceInfo(service_id="netra-agent-backend", description="example"),
    )
    return app
