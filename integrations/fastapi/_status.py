"""The live status page: what an operator watches during an incident.

``GET {path}`` serves a small static page (HTML + JS shipped in the package, no CDN), which
subscribes to ``GET {path}/events`` (server-sent events) and redraws on every snapshot; ``GET
{path}/snapshot`` is the same document once, as JSON. One row per registered dependency:
criticality, health, breaker state and how long it has held, the last failure's *type* (never a
message); then the degraded answers per reason and p50/p99 over the last minutes.

Costs: a request pays one bucket increment (:class:`RequestStats`, fixed memory); snapshots are
built only while someone is subscribed, at most once per ``interval`` however many watch.
Access is the application's gate (``details``, as for ``/health``): nothing about internals for
a caller it refuses.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from netra_resilience.clock import Clock
from netra_resilience.degradation import Degradation
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health import ServiceRegistry
from netra_resilience.integrations.fastapi._health import DetailAccess, detail_allowed
from netra_resilience.integrations.fastapi._middleware import STATE_DEGRADATION
from netra_resilience.validation import Seconds, duration

__all__ = ["RequestStats", "StatusRecorder", "status_router"]

_OWNER = "status_router"
PAGE = Path(__file__).with_name("status.html")
LATENCY_BINS = 64
"""Log-spaced latency bins from 1 ms to ~100 s: p50/p99 within about 20 %, fixed memory."""
_LOW, _HIGH = 1e-3, 100.0
_RATIO = (_HIGH / _LOW) ** (1 / (LATENCY_BINS - 1))
MAX_REASONS = 64
"""Distinct ``dependency=reason`` flags kept per bucket; more are counted as ``other``."""
_TYPE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:")


def _bin(seconds: float) -> int:
    if seconds <= _LOW:
        return 0
    return min(LATENCY_BINS - 1, int(math.log(seconds / _LOW, _RATIO)) + 1)


def _bin_value(index: int) -> float:
    return float(_LOW * _RATIO ** max(index - 0.5, 0.0))


class _Bucket:
    __slots__ = ("latencies", "reasons", "requests", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.requests = 0
        self.latencies = [0] * LATENCY_BINS
        self.reasons: dict[str, int] = {}


class RequestStats:
    """Requests, their latency and their degradation flags in ``buckets`` time buckets of
    ``bucket_seconds`` (a ring: the last ``buckets * bucket_seconds`` seconds)."""

    def __init__(self, clock: Clock, *, bucket_seconds: Seconds = 10.0, buckets: int = 30) -> None:
        self._clock = clock
        self._width = duration("RequestStats", "bucket_seconds", bucket_seconds)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 10_000:
            raise InvalidOptionsError(
                "RequestStats", "buckets", f"must be 1..10000, got {buckets!r}"
            )
        self._ring: list[_Bucket | None] = [None] * buckets

    @property
    def window(self) -> float:
        """Seconds covered by :meth:`summary`."""
        return self._width * len(self._ring)

    def _bucket(self, now: float) -> _Bucket:
        index = int(now // self._width)
        slot = index % len(self._ring)
        bucket = self._ring[slot]
        if bucket is None or bucket.start != index:
            bucket = self._ring[slot] = _Bucket(index)
        return bucket

    def record(self, seconds: float, degradation: Degradation | None) -> None:
        bucket = self._bucket(self._clock.monotonic())
        bucket.requests += 1
        bucket.latencies[_bin(seconds)] += 1
        if degradation:
            for dependency, reason in degradation.as_dict().items():
                flag = f"{dependency}={reason}"
                if flag not in bucket.reasons and len(bucket.reasons) >= MAX_REASONS:
                    flag = "other"
                bucket.reasons[flag] = bucket.reasons.get(flag, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Requests, degraded answers per flag, p50/p99 (seconds) over the window."""
        oldest = int(self._clock.monotonic() // self._width) - len(self._ring) + 1
        requests = 0
        latencies = [0] * LATENCY_BINS
        reasons: dict[str, int] = {}
        for bucket in self._ring:
            if bucket is None or bucket.start < oldest:
                continue
            requests += bucket.requests
            for i, count in enumerate(bucket.latencies):
                latencies[i] += count
            for flag, count in bucket.reasons.items():
                reasons[flag] = reasons.get(flag, 0) + count
        return {
            "window_seconds": self.window,
            "requests": requests,
            "degraded": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "p50_seconds": _quantile(latencies, requests, 0.50),
            "p99_seconds": _quantile(latencies, requests, 0.99),
        }


def _quantile(bins: list[int], total: int, q: float) -> float | None:
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(bins):
        seen += count
        if seen >= rank:
            return round(_bin_value(index), 6)
    return round(_bin_value(LATENCY_BINS - 1), 6)


class StatusRecorder:
    """ASGI middleware feeding :class:`RequestStats`; add it *inside* ``ResilienceMiddleware``
    (``install(..., status_path=...)`` does), where the request's degradation is known."""

    def __init__(self, app: ASGIApp, *, stats: RequestStats, clock: Clock, skip: str) -> None:
        self.app = app
        self._stats = stats
        self._clock = clock
        self._skip = skip  # the page's own requests are not traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self._skip):
            await self.app(scope, receive, send)
            return
        started = self._clock.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            degradation = (scope.get("state") or {}).get(STATE_DEGRADATION)
            self._stats.record(
                self._clock.monotonic() - started,
                degradation if isinstance(degradation, Degradation) else None,
            )


class _StateSince:
    """When each breaker entered its current state, from the breakers' own transitions."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._since: dict[str, float] = {}
        self._watched: set[str] = set()
        self._unsubscribe: list[Callable[[], None]] = []

    def watch(self, registry: ServiceRegistry) -> None:
        for name in registry:
            if name in self._watched:
                continue
            self._watched.add(name)
            subscribe = getattr(registry.breaker(name), "add_state_listener", None)
            if callable(subscribe):
                self._unsubscribe.append(subscribe(self._listener(name)))

    def _listener(self, name: str) -> Callable[..., None]:
        def changed(*_: object) -> None:
            self._since[name] = self._clock.monotonic()

        return changed

    def held(self, name: str, started: float) -> float:
        """Seconds in the current state (since the page started watching, at most)."""
        return self._clock.monotonic() - self._since.get(name, started)


@dataclass(frozen=True, slots=True)
class _Demo:
    faults: str
    chat: str


def _failure_type(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 100 and set(value) <= _TYPE_NAME_CHARS:
        return value
    return None


class _Snapshots:
    """Builds the status document, at most once per ``interval`` (shared by every watcher)."""

    def __init__(
        self,
        registry: ServiceRegistry,
        stats: RequestStats,
        clock: Clock,
        interval: float,
        demo: _Demo | None,
    ) -> None:
        self._registry = registry
        self._stats = stats
        self._clock = clock
        self._interval = interval
        self._demo = demo
        self._since = _StateSince(clock)
        self._started = clock.monotonic()
        self._last: tuple[float, str] | None = None

    def document(self) -> dict[str, Any]:
        registry = self._registry
        self._since.watch(registry)
        report = registry.monitor.report()
        rows = []
        for component in report.components:
            breaker = registry.breaker(component.name)
            rows.append(
                {
                    "name": component.name,
                    "criticality": component.criticality.value,
                    "status": component.status.value,
                    "breaker": component.circuit_state,
                    "held_seconds": (
                        round(self._since.held(component.name, self._started), 1)
                        if breaker is not None
                        else None
                    ),
                    "last_failure": _failure_type(getattr(breaker, "last_failure_type", None)),
                    "retry_after": component.retry_after,
                }
            )
        document: dict[str, Any] = {
            "status": report.status.value,
            "time": report.time.isoformat(),
            "dependencies": rows,
            "requests": self._stats.summary(),
            "interval": self._interval,
        }
        if self._demo is not None:
            document["demo"] = {"faults": self._demo.faults, "chat": self._demo.chat}
        return document

    def encoded(self) -> str:
        now = self._clock.monotonic()
        if self._last is not None and now - self._last[0] < self._interval:
            return self._last[1]
        text = json.dumps(self.document(), separators=(",", ":"))
        self._last = (now, text)
        return text


def status_router(
    registry: ServiceRegistry,
    stats: RequestStats,
    *,
    clock: Clock,
    path: str = "/status",
    details: DetailAccess = False,
    interval: Seconds = 1.0,
    demo: bool = False,
    include_in_schema: bool = False,
) -> APIRouter:
    """``GET {path}`` (the page), ``{path}/snapshot`` (JSON), ``{path}/events`` (SSE).

    ``details`` gates all three (``True``, ``False`` or ``check(request)``): the page is all
    internals. ``demo`` adds fault switches and a chat box to the page, for an app exposing
    ``/demo/faults`` and ``POST /v1/chat`` (what ``netra-resilience drill`` also drives).
    """
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
        raise InvalidOptionsError(_OWNER, "path", f"must start with '/', not end with it: {path!r}")
    every = duration(_OWNER, "interval", interval)
    snapshots = _Snapshots(
        registry, stats, clock, every, _Demo("/demo/faults", "/v1/chat") if demo else None
    )
    page = PAGE.read_text(encoding="utf-8").replace("{{EVENTS}}", f"{path}/events")
    router = APIRouter(include_in_schema=include_in_schema)
    no_store = {"Cache-Control": "no-store"}

    async def allowed(request: Request) -> bool:
        return await detail_allowed(details, request)

    def refused() -> Response:
        return JSONResponse({"detail": "forbidden"}, status_code=403, headers=no_store)

    @router.get(path, response_class=HTMLResponse)
    async def status_page(request: Request) -> Response:
        if not await allowed(request):
            return refused()
        return HTMLResponse(page, headers=no_store)

    @router.get(f"{path}/snapshot")
    async def status_snapshot(request: Request) -> Response:
        if not await allowed(request):
            return refused()
        return Response(snapshots.encoded(), media_type="application/json", headers=no_store)

    @router.get(f"{path}/events")
    async def status_events(request: Request) -> Response:
        if not await allowed(request):
            return refused()

        async def stream() -> AsyncIterator[str]:
            yield f"retry: {int(every * 1000)}\n\n"
            while not await request.is_disconnected():
                yield f"data: {snapshots.encoded()}\n\n"
                await clock.sleep(every)

        headers = {**no_store, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return router
