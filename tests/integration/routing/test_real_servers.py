"""Two real HTTP servers on loopback (subprocesses); one is SIGKILLed mid-load.

Breakers run on a FakeClock: nothing here sleeps to wait for a breaker. The only real waits
are for real I/O (requests, and the servers to start accepting connections).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.integrations.http.routing import (
    EndpointRoutingTransport,
    http_server_failure,
)
from netra_resilience.routing import EndpointPool, EndpointPoolOptions
from netra_resilience.testing import FakeClock
from tests.servers import free_port

SERVER = r"""
import asyncio, sys
port = int(sys.argv[1])
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = str(port).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except Exception:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.port)])
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:  # bounded wait for real I/O readiness
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.01)  # real-sleep-ok: polling a real server until it listens
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    pair = [Server(free_port()), Server(free_port())]
    for server in pair:
        server.start()
    yield pair
    for server in pair:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


async def test_killed_server_gets_no_traffic_after_breaker_opens_and_returns(
    servers: list[Server],
) -> None:
    clock = FakeClock()
    breaker = CircuitBreakerOptions(
        minimum_throughput=2,
        window="count",
        window_size=4,
        break_duration=5.0,
        should_handle=http_server_failure,
    )
    urls = [f"http://127.0.0.1:{s.port}" for s in servers]
    pool = EndpointPool("api", urls, options=EndpointPoolOptions(breaker=breaker), clock=clock)
    await pool.refresh()
    victim = pool.member(urls[1])
    assert victim is not None
    routing = EndpointRoutingTransport(httpx.AsyncHTTPTransport(), pool)
    served: list[str] = []
    failures_after_open = 0
    failures = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal failures, failures_after_open
        open_at_start = victim.breaker.state is not CircuitState.CLOSED
        try:
            response = await client.get("/work")
            served.append(response.text)
        except httpx.TransportError:
            failures += 1
            failures_after_open += open_at_start

    async with httpx.AsyncClient(transport=routing, base_url="http://placeholder") as client:
        for _ in range(5):
            await asyncio.gather(*(one(client) for _ in range(4)))
        assert set(served) == {str(s.port) for s in servers}
        servers[1].kill()
        served.clear()
        for _ in range(15):
            await asyncio.gather(*(one(client) for _ in range(4)))
        assert victim.breaker.state is CircuitState.OPEN
        assert failures_after_open == 0
        assert 1 <= failures <= 8  # only the calls that opened the breaker (and were in flight)
        assert served[-40:] == [str(servers[0].port)] * 40

        servers[1].start()  # same port
        await clock.advance(5.0)  # break elapsed: the next call to it is the half-open probe
        served.clear()
        for _ in range(10):
            await asyncio.gather(*(one(client) for _ in range(4)))
        assert str(victim.breaker.state) == "closed"
        assert served.count(str(servers[1].port)) >= 10
        assert failures_after_open == 0
