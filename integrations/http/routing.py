"""Route httpx / httpx2 requests across an :class:`EndpointPool` (one module for both).

    pool = EndpointPool("llm", ["https://eu.example.com", "https://us.example.com"],
                        options=EndpointPoolOptions(breaker=CircuitBreakerOptions(
                            should_handle=http_server_failure)))
    routing = EndpointRoutingTransport(httpx.AsyncHTTPTransport(), pool)
    transport = ResilientAsyncTransport(routing, pipeline)   # retry outside, routing inside
    client = httpx.AsyncClient(transport=transport, base_url="https://eu.example.com")

Each attempt picks an endpoint, rewrites the request URL's scheme/host/port to it and goes
through that endpoint's breaker, so a retry lands on another healthy endpoint. The logic is
duck-typed (:class:`RoutingCore`: ``handle_async_request``/``aclose`` only) and shared;
:class:`EndpointRoutingTransport` is it as an ``httpx.AsyncBaseTransport`` and
:class:`Httpx2EndpointRoutingTransport` as an ``httpx2.AsyncBaseTransport`` (for type checkers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import httpx

from netra_resilience.outcome import Outcome
from netra_resilience.routing import Endpoint, EndpointPool

__all__ = ["EndpointRoutingTransport", "http_server_failure", "route_request"]

_FAILED_STATUS = frozenset({429, 500, 502, 503, 504})


def http_server_failure(outcome: Outcome[Any]) -> bool:
    """Breaker predicate: any exception, or a 429/5xx response from the endpoint."""
    if outcome.exception is not None:
        return True
    status = getattr(outcome.result, "status_code", 200)
    return status in _FAILED_STATUS


class _AsyncTransport(Protocol):
    async def handle_async_request(self, request: Any) -> Any: ...
    async def aclose(self) -> None: ...


def route_request(request: Any, endpoint: Endpoint) -> None:
    """Point ``request`` at ``endpoint`` in place (URL, ``Host``, TLS server name).

    An endpoint resolved from DNS (``meta["hostname"]``) keeps the name in ``Host`` and as
    the TLS server name while connecting to the address.
    """
    url = request.url
    request.url = url.copy_with(scheme=endpoint.scheme, host=endpoint.host, port=endpoint.port)
    hostname = endpoint.meta.get("hostname")
    if hostname:
        default = endpoint.port == (443 if endpoint.scheme == "https" else 80)
        request.headers["Host"] = hostname if default else f"{hostname}:{endpoint.port}"
        if endpoint.scheme == "https":
            request.extensions["sni_hostname"] = hostname
    else:
        request.headers["Host"] = request.url.netloc.decode("ascii")


class RoutingCore:
    """An async transport that sends each request to an endpoint chosen by ``pool``.

    ``sticky_key(request)`` (optional) returns a session/user key: its requests stay on one
    endpoint while it is healthy and move once when it is not. The outcome (response or
    exception) is reported to the endpoint's breaker; count 5xx/429 responses as failures
    with ``CircuitBreakerOptions(should_handle=http_server_failure)``.
    """

    def __init__(
        self,
        inner: _AsyncTransport,
        pool: EndpointPool,
        *,
        sticky_key: Callable[[Any], str | None] | None = None,
    ) -> None:
        self._inner = inner
        self._pool = pool
        self._sticky_key = sticky_key

    @property
    def pool(self) -> EndpointPool:
        return self._pool

    async def handle_async_request(self, request: Any) -> Any:
        key = self._sticky_key(request) if self._sticky_key is not None else None
        inner = self._inner

        async def send(endpoint: Endpoint) -> Any:
            route_request(request, endpoint)
            return await inner.handle_async_request(request)

        outcome = await self._pool.execute_outcome(send, sticky_key=key)
        return outcome.unwrap()

    async def aclose(self) -> None:
        await self._inner.aclose()


class EndpointRoutingTransport(RoutingCore, httpx.AsyncBaseTransport):
    """:class:`RoutingCore` as an ``httpx.AsyncBaseTransport``."""


try:
    import httpx2
except ImportError:  # pragma: no cover - httpx2 is optional
    pass
else:

    class Httpx2EndpointRoutingTransport(RoutingCore, httpx2.AsyncBaseTransport):
        """:class:`RoutingCore` as an ``httpx2.AsyncBaseTransport``."""
