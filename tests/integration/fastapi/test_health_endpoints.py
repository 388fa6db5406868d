"""Health routes through FastAPI: codes, media type, no-store, gated detail, lifespan, recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from netra_resilience import BrokenCircuitError, IsolatedCircuitError, Resilience
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.health import Dependency, ServiceInfo, ServiceRegistry
from netra_resilience.integrations.fastapi import get_registry, health_router, install
from netra_resilience.integrations.fastapi._middleware import RejectionPolicy
from netra_resilience.testing import FakeClock
from tests.unit.health._fakes import Switch

FAKE_KEY = "sk-proj-FAKE0123456789abcdefSECRET"
TOKEN = "ops-token"


class Harness:
    def __init__(self, clock: FakeClock, **install_kwargs: Any) -> None:
        self.clock = clock
        self.events: list[str] = []
        self.db, self.cache, self.metrics = Switch(), Switch(), Switch()
        self.resilience = Resilience(
            dependencies=[
                Dependency("postgres", "critical", check=self.db, component_type="datastore"),
                Dependency(
                    "redis", "important", check=self.cache, strategies=[CircuitBreakerOptions()]
                ),
                Dependency("analytics", "optional", strategies=[CircuitBreakerOptions()]),
                Dependency("metrics", "monitoring", check=self.metrics),
            ],
            probe_interval=10,
            check_timeout=2,
            clock=clock,
        )
        self.registry = self.resilience.registry

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            self.events.append("app startup")
            yield
            self.events.append("app shutdown")

        self.app = FastAPI(lifespan=lifespan)

        @self.app.get("/registry")
        async def registry_route(request: Request) -> list[str]:
            return list(get_registry(request))

        install(
            self.app,
            self.resilience,
            details=lambda request: request.headers.get("authorization") == f"Bearer {TOKEN}",
            service=ServiceInfo(service_id="agent-backend", version="1", release_id="1.4.2"),
            **install_kwargs,
        )
        original_start, original_stop = self.registry.monitor.start, self.registry.monitor.stop

        async def start() -> None:
            self.events.append("monitor start")
            await original_start()

        async def stop() -> None:
            self.events.append("monitor stop")
            await original_stop()

        self.registry.monitor.start = start  # type: ignore[method-assign]
        self.registry.monitor.stop = stop  # type: ignore[method-assign]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://test"
        )


@pytest.fixture
async def harness(clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(clock)
    async with h.app.router.lifespan_context(h.app):
        yield h


AUTH = {"authorization": f"Bearer {TOKEN}"}


def assert_health_headers(response: httpx.Response) -> None:
    assert response.headers["content-type"] == "application/health+json"
    assert response.headers["cache-control"] == "no-store"


async def test_lifespan_composes_with_the_apps_own(clock: FakeClock) -> None:
    h = Harness(clock)
    async with h.app.router.lifespan_context(h.app):
        assert h.registry.monitor.running
        assert h.db.calls == 1  # the first round ran before serving
    assert h.events == ["app startup", "monitor start", "monitor stop", "app shutdown"]
    assert not h.registry.monitor.running


async def test_live_ready_and_detail_when_all_pass(harness: Harness) -> None:
    async with harness.client() as http:
        live = await http.get("/health/live")
        ready = await http.get("/health/ready")
        anonymous = await http.get("/health")
        detail = await http.get("/health", headers=AUTH)
        registry_names = await http.get("/registry")
    for response in (live, ready, anonymous, detail):
        assert response.status_code == 200
        assert_health_headers(response)
    assert live.json() == {"status": "pass"}
    assert ready.json() == {"status": "pass"}
    assert anonymous.json() == {"status": "pass"}  # gated: no detail for anonymous callers
    body = detail.json()
    assert body["status"] == "pass" and body["serviceId"] == "agent-backend"
    assert body["version"] == "1" and body["releaseId"] == "1.4.2"
    assert set(body["checks"]) == {"postgres", "redis", "analytics", "metrics"}
    postgres = body["checks"]["postgres"][0]
    assert postgres == {
        "componentId": "postgres",
        "componentType": "datastore",
        "observedValue": 0.0,
        "observedUnit": "ms",
        "status": "pass",
        "time": "2026-01-01T00:00:00Z",
        "criticality": "critical",
    }
    assert body["checks"]["redis"][0]["circuitState"] == "closed"
    assert registry_names.json() == ["postgres", "redis", "analytics", "metrics"]


async def test_optional_and_monitoring_failures_keep_200(harness: Harness) -> None:
    harness.cache.mode = "raise"
    harness.metrics.mode = "raise"
    await harness.clock.advance(10)
    async with harness.client() as http:
        detail = await http.get("/health", headers=AUTH)
        ready = await http.get("/health/ready")
    assert detail.status_code == 200 and ready.status_code == 200
    body = detail.json()
    assert body["status"] == "warn"
    assert body["output"] == "redis: circuit isolated; check failed: ConnectionError"
    assert body["checks"]["redis"][0]["circuitState"] == "isolated"
    assert body["checks"]["metrics"][0]["status"] == "fail"  # shown, never counted


async def test_critical_failure_within_one_interval_then_recovery(harness: Harness) -> None:
    harness.db.error = PermissionError(f"password authentication failed; key={FAKE_KEY}")
    harness.db.mode = "raise"
    await harness.clock.advance(10)
    async with harness.client() as http:
        anonymous = await http.get("/health")
        detail = await http.get("/health", headers=AUTH)
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "fail"}
    assert detail.status_code == 503 and ready.status_code == 503
    assert ready.headers["retry-after"] == "10" and detail.headers["retry-after"] == "10"
    assert live.status_code == 200  # liveness never looks at dependencies
    for response in (anonymous, detail, ready):
        assert_health_headers(response)
        assert FAKE_KEY not in response.text and "password" not in response.text
    assert "check failed: PermissionError" in detail.text
    harness.db.mode = "ok"
    await harness.clock.advance(10)
    async with harness.client() as http:
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/health")).json() == {"status": "pass"}


async def test_probe_timeout_through_the_endpoint(harness: Harness) -> None:
    harness.db.mode = "hang"
    await harness.clock.advance(10)
    async with harness.client() as http:
        assert (await http.get("/health/ready")).status_code == 200  # cached until the timeout
    await harness.clock.advance(2)
    async with harness.client() as http:
        detail = await http.get("/health", headers=AUTH)
    assert detail.status_code == 503
    postgres = detail.json()["checks"]["postgres"][0]
    assert postgres["output"] == "check timed out" and postgres["observedValue"] == 2000.0


async def test_breaker_isolated_by_health_check_rejects_calls(harness: Harness) -> None:
    harness.cache.mode = "raise"
    await harness.clock.advance(10)
    pipeline = harness.registry.pipeline("redis")

    async def call() -> str:
        return "hit"

    with pytest.raises(IsolatedCircuitError):
        await pipeline.execute(call)
    policy = RejectionPolicy(harness.registry)
    assert policy.retry_after(IsolatedCircuitError(dependency="redis")) == 10.0  # next check
    assert policy.retry_after(IsolatedCircuitError(dependency="analytics")) == 5.0  # no check
    harness.cache.mode = "ok"
    await harness.clock.advance(10)
    assert await pipeline.execute(call) == "hit"  # recovery closed the breaker


async def test_traffic_opened_breaker_shows_in_health(harness: Harness) -> None:
    pipeline = harness.registry.pipeline("analytics")

    async def fail() -> None:
        raise ConnectionResetError(f"upstream said {FAKE_KEY}")

    for _ in range(20):
        with suppress(ConnectionResetError, BrokenCircuitError):
            await pipeline.execute(fail)
    async with harness.client() as http:
        detail = await http.get("/health", headers=AUTH)
    analytics = detail.json()["checks"]["analytics"][0]
    assert detail.status_code == 200 and detail.json()["status"] == "warn"
    assert analytics["circuitState"] == "open"
    assert analytics["output"] == "circuit open (last failure: ConnectionResetError)"
    assert FAKE_KEY not in detail.text


async def test_draining_after_shutdown(clock: FakeClock) -> None:
    h = Harness(clock)
    async with h.app.router.lifespan_context(h.app):
        pass
    async with h.client() as http:
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")
    assert ready.status_code == 503 and live.status_code == 200


async def test_health_router_alone_with_custom_codes_and_async_gate(clock: FakeClock) -> None:
    async def allow(request: Request) -> bool:
        return request.query_params.get("token") == TOKEN

    switch = Switch()
    registry = ServiceRegistry([Dependency("cache", "optional", check=switch)], clock=clock)
    app = FastAPI()
    codes = {"pass": 200, "warn": 207, "fail": 500}
    app.include_router(health_router(registry.monitor, path="/_status", details=allow, codes=codes))
    async with app.router.lifespan_context(app):
        switch.mode = "raise"
        await clock.advance(10)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            anonymous = await http.get("/_status")
            detail = await http.get("/_status", params={"token": TOKEN})
            ready = await http.get("/_status/ready")
            live = await http.get("/_status/live")
    assert anonymous.status_code == 207 and anonymous.json() == {"status": "warn"}
    assert detail.status_code == 207 and "checks" in detail.json()
    assert ready.status_code == 200 and live.status_code == 200
    assert "/_status" not in app.openapi()["paths"]  # probes stay out of the schema


async def test_without_health_routes_the_monitor_still_runs(clock: FakeClock) -> None:
    h = Harness(clock, health_path=None)
    async with h.app.router.lifespan_context(h.app):
        assert h.registry.monitor.running
        async with h.client() as http:
            assert (await http.get("/health")).status_code == 404
    assert h.events == ["app startup", "monitor start", "monitor stop", "app shutdown"]
