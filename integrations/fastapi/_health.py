"""FastAPI health routes (live, ready, detail) and the lifespan that runs the monitor."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from netra_resilience.health import (
    HEALTH_HEADERS,
    HEALTH_MEDIA_TYPE,
    LIVENESS_DOCUMENT,
    Criticality,
    HealthMonitor,
    HealthStatus,
    ServiceInfo,
    encode_document,
    health_document,
    readiness_document,
    retry_after_header,
    status_codes,
)

__all__ = ["DetailAccess", "health_router"]

DetailAccess = bool | Callable[[Request], bool | Awaitable[bool]]
"""Who sees the health detail: ``True`` everyone, ``False`` no one, or a check per request."""


async def detail_allowed(details: DetailAccess, request: Request) -> bool:
    """Whether ``request`` may see internals (the health detail, the status page)."""
    if isinstance(details, bool):
        return details
    verdict = details(request)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return verdict is True


def _health_response(
    document: Mapping[str, Any], status: int, retry_after: str | None = None
) -> Response:
    headers = dict(HEALTH_HEADERS)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Response(
        encode_document(document), status_code=status, media_type=HEALTH_MEDIA_TYPE, headers=headers
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
) -> APIRouter:
    """``GET {path}/live``, ``{path}/ready`` and ``{path}`` (detail), all health+json, no-store.

    * live: the process answers; never consults a dependency.
    * ready: ``fail``/503 only when a dependency whose criticality is in ``ready_on`` failed,
      or while draining at shutdown.
    * detail: criticality-weighted ``pass``/``warn``/``fail``; the ``checks`` only for
      callers that ``details`` admits (others get just ``{"status": ...}``).
    The monitor runs while the runtime that owns it is open (``install`` sees to that).
    All three answer ``HEAD`` too (load balancers probe with it).
    """
    http_codes = status_codes(codes)
    ready_levels = frozenset(Criticality(str(c).lower()) for c in ready_on)

    router = APIRouter()

    async def allowed(request: Request) -> bool:
        return await detail_allowed(details, request)

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
    router.add_api_route(f"{path}/live", live, methods=["GET", "HEAD"], **options)
    router.add_api_route(f"{path}/ready", ready, methods=["GET", "HEAD"], **options)
    router.add_api_route(path, health, methods=["GET", "HEAD"], **options)
    return router
