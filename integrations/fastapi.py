"""FastAPI helpers: one-call ``install``, a ``Depends`` accessor, exception handler, health router.

::

    registry = ServiceRegistry([
        Dependency("postgres", "critical", check=ping_db, strategies=[CircuitBreakerOptions()]),
        Dependency("analytics", "optional", strategies=[CircuitBreakerOptions()]),
    ])
    app = FastAPI(lifespan=my_lifespan)
    install(app, registry, details=lambda request: request.headers.get("x-ops") == TOKEN)

    @app.get("/chat")
    async def chat(degradation: CurrentDegradation) -> dict[str, str]: ...

``install`` composes with the application's own lifespan: the health monitor starts after the
application's startup (so checks can use the pools it creates) and stops before its shutdown.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from netra_resilience.degradation import Degradation
from netra_resilience.exceptions import ExecutionRejectedError
from netra_resilience.health import (
    HEALTH_HEADERS,
    HEALTH_MEDIA_TYPE,
    LIVENESS_DOCUMENT,
    Criticality,
    HealthMonitor,
    HealthStatus,
    ServiceInfo,
    ServiceRegistry,
    health_document,
    readiness_document,
    retry_after_header,
    status_codes,
)
from netra_resilience.health._document import encode

from .asgi import DEFAULT_HEADER, STATE_DEGRADATION, RejectionPolicy, ResilienceMiddleware

DetailAccess = bool | Callable[[Request], bool | Awaitable[bool]]
"""Who sees the health detail: ``True`` everyone, ``False`` no one, or a check per request."""

__all__ = [
    "CurrentDegradation",
    "DetailAccess",
    "get_degradation",
    "get_registry",
    "health_router",
    "install",
    "monitor_lifespan",
    "rejection_handler",
]


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


def monitor_lifespan(monitor: HealthMonitor) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan that starts ``monitor`` on startup and stops it (draining) on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await monitor.start()
        try:
            yield
        finally:
            await monitor.stop()

    return lifespan


def _health_response(
    document: Mapping[str, Any], status: int, retry_after: str | None = None
) -> Response:
    headers = dict(HEALTH_HEADERS)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Response(
        encode(document), status_code=status, media_type=HEALTH_MEDIA_TYPE, headers=headers
    )


def health_router(
    monitor: HealthMonitor,
    *,
    path: str = "/health",
    details: DetailAccess = False,
    service: ServiceInfo | None = None,
    codes: Mapping[HealthStatus | str, int] | None = None,
    ready_on: Collection[Criticality | str] = (Criticality.CRITICAL,),
    include_in_schema: bool = False,
    manage_monitor: bool = True,
) -> APIRouter:
    """``GET {path}/live``, ``{path}/ready`` and ``{path}`` (detail), all health+json, no-store.

    * live: the process answers; never consults a dependency.
    * ready: ``fail``/503 only when a dependency whose criticality is in ``ready_on`` failed,
      or while draining at shutdown.
    * detail: criticality-weighted ``pass``/``warn``/``fail``; the ``checks`` only for
      callers that ``details`` admits (others get just ``{"status": ...}``).
    With ``manage_monitor`` the router's lifespan starts and stops the monitor.
    """
    http_codes = status_codes(codes)
    ready_levels = frozenset(Criticality(str(c).lower()) for c in ready_on)

    router = APIRouter(lifespan=monitor_lifespan(monitor) if manage_monitor else None)

    async def allowed(request: Request) -> bool:
        if isinstance(details, bool):
            return details
        verdict = details(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict is True

    async def live() -> Response:
        return _health_response(LIVENESS_DOCUMENT, http_codes[HealthStatus.PASS])

    async def ready() -> Response:
        report = monitor.report()
        is_ready = report.ready(ready_levels)
        status = HealthStatus.PASS if is_ready else HealthStatus.FAIL
        retry = None if is_ready else retry_after_header(report.retry_after)
        return _health_response(readiness_document(is_ready), http_codes[status], retry)

    async def health(request: Request) -> Response:
        report = monitor.report()
        document = health_document(report, detail=await allowed(request), service=service)
        retry = (
            retry_after_header(report.retry_after) if report.status is HealthStatus.FAIL else None
        )
        return _health_response(document, http_codes[report.status], retry)

    options: dict[str, Any] = {"include_in_schema": include_in_schema, "response_class": Response}
    router.add_api_route(f"{path}/live", live, methods=["GET"], **options)
    router.add_api_route(f"{path}/ready", ready, methods=["GET"], **options)
    router.add_api_route(path, health, methods=["GET"], **options)
    return router


def install(
    app: FastAPI,
    registry: ServiceRegistry,
    *,
    header_name: str = DEFAULT_HEADER,
    health_path: str | None = "/health",
    details: DetailAccess = False,
    service: ServiceInfo | None = None,
    codes: Mapping[HealthStatus | str, int] | None = None,
    ready_on: Collection[Criticality | str] = (Criticality.CRITICAL,),
    default_retry_after: float = 5.0,
    problem_type: str = "about:blank",
) -> HealthMonitor:
    """Wire netra-resilience into ``app``; returns the registry's health monitor.

    Adds :class:`ResilienceMiddleware` (call ``install`` after your other ``add_middleware``
    calls so it is outermost), the rejection exception handler, the health routes (unless
    ``health_path`` is ``None``) and a lifespan that runs the monitor inside yours. The
    registry is kept on ``app.state.netra_registry``.
    """
    policy = RejectionPolicy(
        registry, default_retry_after=default_retry_after, problem_type=problem_type
    )
    app.state.netra_registry = registry
    app.add_middleware(
        ResilienceMiddleware, registry=registry, header_name=header_name, policy=policy
    )
    # Typed as HTTPConnection: Starlette calls it with a Request or a WebSocket.
    app.add_exception_handler(ExecutionRejectedError, cast(Any, rejection_handler(policy)))
    monitor = registry.monitor
    if health_path is None:  # no routes, but the monitor still runs in the lifespan
        app.include_router(APIRouter(lifespan=monitor_lifespan(monitor)))
        return monitor
    router = health_router(
        monitor, path=health_path, details=details, service=service, codes=codes, ready_on=ready_on
    )
    app.include_router(router)
    return monitor
