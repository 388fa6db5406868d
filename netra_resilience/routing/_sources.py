"""Where endpoints come from: a static list, DNS, or the application's discovery callable."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from netra_resilience.routing._endpoint import Endpoint

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolver(host, port) -> addresses``; the default asks ``loop.getaddrinfo``."""

DiscoveryResult = Iterable[Endpoint | str]
Discovery = Callable[[], DiscoveryResult | Awaitable[DiscoveryResult]]


@runtime_checkable
class EndpointSource(Protocol):
    """Answers the current endpoint set; raises (any exception) when it cannot."""

    async def resolve(self) -> Sequence[Endpoint]: ...


def _coerce(items: Iterable[Endpoint | str]) -> list[Endpoint]:
    return [item if isinstance(item, Endpoint) else Endpoint.parse(item) for item in items]


class StaticEndpoints:
    """A fixed list (``"http://10.0.0.1:8000"`` strings or :class:`Endpoint` objects)."""

    __slots__ = ("_endpoints",)

    def __init__(self, endpoints: Iterable[Endpoint | str]) -> None:
        self._endpoints = tuple(_coerce(endpoints))
        if not self._endpoints:
            raise ValueError("StaticEndpoints needs at least one endpoint")

    async def resolve(self) -> Sequence[Endpoint]:
        return self._endpoints


async def getaddrinfo_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve with the event loop's (thread-pooled) ``getaddrinfo``; unique, in answer order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DnsEndpoints:
    """One endpoint per address ``host`` resolves to.

    Each endpoint remembers the name in ``meta["hostname"]`` so the routing transport keeps
    the ``Host`` header and TLS server name of the original URL while connecting by address.
    """

    __slots__ = ("_host", "_port", "_resolver", "_scheme")

    def __init__(
        self, host: str, port: int, *, scheme: str = "http", resolver: Resolver | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._scheme = scheme
        self._resolver = resolver or getaddrinfo_resolver

    async def resolve(self) -> Sequence[Endpoint]:
        addresses = await self._resolver(self._host, self._port)
        return [
            Endpoint(address, self._port, self._scheme, {"hostname": self._host})
            for address in addresses
        ]


class DiscoveryEndpoints:
    """The application's own discovery (Consul, Kubernetes API, a config service, ...).

    ``discover()`` may be sync or async and returns endpoints or URL strings.
    """

    __slots__ = ("_discover",)

    def __init__(self, discover: Discovery) -> None:
        if not callable(discover):
            raise TypeError("DiscoveryEndpoints needs a callable")
        self._discover = discover

    async def resolve(self) -> Sequence[Endpoint]:
        answer = self._discover()
        if inspect.isawaitable(answer):
            answer = await answer
        return _coerce(answer)
