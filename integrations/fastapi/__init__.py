"""FastAPI helpers: one-call ``install``, a ``Depends`` accessor, exception handler, health router.

::

    resilience = Resilience(dependencies=[
        Dependency("postgres", "critical", check=ping_db, strategies=[CircuitBreakerOptions()]),
        Dependency("analytics", "optional", strategies=[CircuitBreakerOptions()]),
    ])
    app = FastAPI(lifespan=my_lifespan)
    install(app, resilience, details=lambda request: request.headers.get("x-ops") == TOKEN)

    @app.get("/chat")
    async def chat(degradation: CurrentDegradation) -> dict[str, str]: ...

Runs resumed by ``(run_id, last seq)``: ``run_event_stream(request, log, run_id)`` (SSE with
``Last-Event-ID``) and ``await send_run_events(websocket, log, run_id, last_seq)``.

A WebSocket route hands its frames to ``serve_frames`` (bad frames answered with an error event,
the socket kept open, a hang-up cancelling the running handler quietly)::

    @app.websocket("/chat")
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        await serve_frames(websocket, lambda text: answer(websocket, text))

``install`` composes with the application's own lifespan: the runtime (health probes) starts
after the application's startup (so checks can use the pools it creates) and closes (draining
engines' hook queues, closing what it holds) before the application's shutdown runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Annotated, Any, cast

from netra_resilience.integrations import missing_extra

try:
    from fastapi import Depends, FastAPI
    from starlette.requests import ClientDisconnect, HTTPConnection
    from starlette.responses import Response
    from starlette.websockets import WebSocket
except ImportError as error:  # the extra is not installed
    raise missing_extra("fastapi", error) from error

from netra_resilience.degradation import Degradation
from netra_resilience.exceptions import ExecutionRejectedError
from netra_resilience.health import (
    Criticality,
    HealthMonitor,
    HealthStatus,
    ServiceInfo,
    ServiceRegistry,
)
from netra_resilience.integrations.fastapi._health import DetailAccess, health_router
from netra_resilience.integrations.fastapi._middleware import (
    DEFAULT_HEADER,
    STATE_DEGRADATION,
    Identify,
    RejectionPolicy,
    ResilienceMiddleware,
)
from netra_resilience.integrations.fastapi._resume import (
    last_event_id,
    run_event_stream,
    send_run_events,
)
from netra_resilience.integrations.fastapi._status import (
    RequestStats,
    StatusRecorder,
    status_router,
)
from netra_resilience.integrations.fastapi._websocket import (
    MAX_FRAME_BYTES,
    FrameHandler,
    client_gone,
    serve_frames,
)
from netra_resilience.runtime import Resilience

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "MAX_FRAME_BYTES",
    "CurrentDegradation",
    "DetailAccess",
    "FrameHandler",
    "RequestStats",
    "ResilienceMiddleware",
    "client_gone",
    "get_degradation",
    "get_registry",
    "health_router",
    "install",
    "last_event_id",
    "rejection_handler",
    "run_event_stream",
    "send_run_events",
    "serve_frames",
    "status_router",
]

CLIENT_CLOSED_REQUEST = 499
"""The status logged for a request whose client left before its body arrived (nginx's 499)."""


def get_degradation(connection: HTTPConnection) -> Degradation:
    """The current request's (or WebSocket's) :class:`Degradation`; use with ``Depends``."""
    degradation = connection.scope.get("state", {}).get(STATE_DEGRADATION)
    if not isinstance(degradation, Degradation):
        raise RuntimeError("no Degradation on this request: add ResilienceMiddleware (install())")
    return degradation


CurrentDegradation = Annotated[Degradation, Depends(get_degradation)]
"""``async def route(degradation: CurrentDegradation)``."""


def get_registry(connection: HTTPConnection) -> ServiceRegistry:
    """The application's :class:`ServiceRegistry` (set by :func:`install` on ``app.state``)."""
    registry = getattr(connection.app.state, "netra_registry", None)
    if not isinstance(registry, ServiceRegistry):
        raise RuntimeError("no ServiceRegistry on app.state: call install(app, registry)")
    return registry


def rejection_handler(
    policy: RejectionPolicy,
) -> Callable[[HTTPConnection, Exception], Awaitable[Response | None]]:
    """Exception handler: a critical rejection becomes the 503 problem response.

    Produced inside the app, the response still passes through CORS and the application's
    other middlewares. On a WebSocket the connection is closed with 1013 (try again later).
    A non-critical rejection is re-raised: it escaped its fallback, which is a bug to see,
    not an outage to hide.
    """

    async def handle(connection: HTTPConnection, exc: Exception) -> Response | None:
        if not isinstance(exc, ExecutionRejectedError) or not policy.is_critical(exc):
            raise exc
        if isinstance(connection, WebSocket):
            await connection.close(code=1013, reason="dependency unavailable")
            return None
        status, headers, body = policy.render(exc)
        response = Response(body, status_code=status)
        response.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
        return response

    return handle


async def client_disconnect_handler(connection: HTTPConnection, exc: Exception) -> Response:
    """A client that aborts mid-body (Starlette's ``ClientDisconnect``) is normal: answer 499
    (nobody reads it; the access log shows it) instead of a traceback."""
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install(
    app: FastAPI,
    resilience: Resilience,
    *,
    header_name: str = DEFAULT_HEADER,
    health_path: str | None = "/health",
    details: DetailAccess = False,
    service: ServiceInfo | None = None,
    codes: Mapping[HealthStatus | str, int] | None = None,
    ready_on: Collection[Criticality | str] = (Criticality.CRITICAL,),
    default_retry_after: float = 5.0,
    problem_type: str = "about:blank",
    identify: Identify | None = None,
    status_path: str | None = None,
    status_demo: bool = False,
) -> HealthMonitor:
    """Wire the runtime into ``app``; returns its health monitor.

    Adds :class:`ResilienceMiddleware` (call ``install`` after your other ``add_middleware``
    calls so it is outermost), the rejection exception handler, a quiet 499 for a client that
    leaves mid-body (``ClientDisconnect``), the health routes (unless
    ``health_path`` is ``None``), and runs the runtime inside the app's lifespan (also when
    the app was made with ``FastAPI(lifespan=resilience.lifespan)``: entering is counted).
    ``identify(scope)`` names the caller of each request (see :class:`ResilienceMiddleware`):
    without it, per-caller caches are bypassed for calls made outside an engine run. The
    runtime's registry is kept on ``app.state.netra_registry``.

    ``status_path`` (e.g. ``"/status"``) mounts the live status page (:func:`status_router`),
    gated by ``details`` like the health detail; ``status_demo`` adds its fault switches and
    chat box (for an app exposing ``/demo/faults`` and ``POST /v1/chat``).
    """
    given: object = resilience
    if not isinstance(given, Resilience):
        kind = type(given).__name__
        raise TypeError(f"install() takes the application's Resilience runtime, got {kind}")
    registry = resilience.registry
    policy = RejectionPolicy(
        registry, default_retry_after=default_retry_after, problem_type=problem_type
    )
    app.state.netra_registry = registry
    if status_path is not None:
        stats = RequestStats(resilience.clock)
        router = status_router(
            registry,
            stats,
            clock=resilience.clock,
            path=status_path,
            details=details,
            demo=status_demo,
        )
        # Inside ResilienceMiddleware (added after it): the request's degradation is set.
        app.add_middleware(StatusRecorder, stats=stats, clock=resilience.clock, skip=status_path)
        app.include_router(router)
    app.add_middleware(
        ResilienceMiddleware,
        registry=registry,
        header_name=header_name,
        policy=policy,
        identify=identify,
    )
    # Typed as HTTPConnection: Starlette calls it with a Request or a WebSocket.
    app.add_exception_handler(ExecutionRejectedError, cast(Any, rejection_handler(policy)))
    app.add_exception_handler(ClientDisconnect, cast(Any, client_disconnect_handler))
    # Wrapping the router's own lifespan works on every FastAPI release (no reliance on
    # nested-router lifespan merging) and keeps the app's startup outside the runtime's.
    app.router.lifespan_context = resilience.around(app.router.lifespan_context)
    monitor = resilience.monitor
    if health_path is not None:
        app.include_router(
            health_router(
                monitor,
                path=health_path,
                details=details,
                service=service,
                codes=codes,
                ready_on=ready_on,
            )
        )
    return monitor
