"""EndpointRoutingTransport with httpx and httpx2 mock transports, and under a retry."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.integrations.http.routing import (
    EndpointRoutingTransport,
    Httpx2EndpointRoutingTransport,
    http_server_failure,
)
from netra_resilience.pipeline import PipelineBuilder
from netra_resilience.retry import RetryOptions
from netra_resilience.routing import DnsEndpoints, EndpointPool, EndpointPoolOptions
from netra_resilience.testing import FakeClock, advance_until_done

URLS = ["http://a:1", "http://b:2", "http://c:3"]


def _pool(clock: FakeClock) -> EndpointPool:
    breaker = CircuitBreakerOptions(
        minimum_throughput=2, window="count", window_size=4, should_handle=http_server_failure
    )
    return EndpointPool("llm", URLS, options=EndpointPoolOptions(breaker=breaker), clock=clock)


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_routes_requests_and_opens_on_5xx(clock: FakeClock, lib: Any) -> None:
    seen: list[str] = []

    def handler(request: Any) -> Any:
        seen.append(request.headers["host"])
        status = 503 if request.url.host == "b" else 200
        return lib.Response(status, text=request.url.host)

    cls = EndpointRoutingTransport if lib is httpx else Httpx2EndpointRoutingTransport
    routing = cls(lib.MockTransport(handler), _pool(clock))
    async with lib.AsyncClient(transport=routing, base_url="http://placeholder") as client:
        statuses = [(await client.get("/v1/x")).status_code for _ in range(12)]
    assert statuses.count(503) == 2
    assert seen[:3] == ["a:1", "b:2", "c:3"]
    assert routing.pool.member("http://b:2").breaker.state is CircuitState.OPEN  # type: ignore[union-attr]


async def test_retry_goes_to_another_endpoint(clock: FakeClock) -> None:
    from netra_resilience.integrations.http.httpx import ResilientAsyncTransport

    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(str(request.url.host))
        if request.url.host == "a":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, text="ok")

    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_retry(RetryOptions(max_attempts=3, delay=0.1, use_jitter=False))
        .build()
    )
    routing = EndpointRoutingTransport(httpx.MockTransport(handler), _pool(clock))
    transport = ResilientAsyncTransport(routing, pipeline)
    async with httpx.AsyncClient(transport=transport, base_url="http://a:1") as client:
        response = await advance_until_done(clock, client.get("/v1/chat"))
    assert response.status_code == 200
    assert hosts == ["a", "b"]


async def test_dns_endpoint_keeps_host_header_and_sni(clock: FakeClock) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.1.1.1"]

    pool = EndpointPool(
        "api", DnsEndpoints("api.example.com", 443, scheme="https", resolver=resolver), clock=clock
    )
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200)

    routing = EndpointRoutingTransport(httpx.MockTransport(handler), pool)
    async with httpx.AsyncClient(transport=routing) as client:
        await client.get("https://api.example.com/v1/x")
    request = captured[0]
    assert str(request.url) == "https://10.1.1.1/v1/x"
    assert request.headers["host"] == "api.example.com"
    assert request.extensions["sni_hostname"] == "api.example.com"


async def test_sticky_key_from_request(clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=str(request.url.host))

    routing = EndpointRoutingTransport(
        httpx.MockTransport(handler), _pool(clock), sticky_key=lambda r: r.headers.get("x-user")
    )
    async with httpx.AsyncClient(transport=routing, base_url="http://x") as client:
        texts = [(await client.get("/", headers={"x-user": "u7"})).text for _ in range(5)]
    assert len(set(texts)) == 1
