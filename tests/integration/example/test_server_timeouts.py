"""The demo command's uvicorn on a loopback port: silent and stalled connections get closed.

Real time is spent here only because the bound under test is the server's own socket timeout
(0.3 s in this test, so the whole test takes about a second).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import uvicorn

from examples.agent_backend import create_app
from examples.agent_backend.server import server_config
from netra_resilience import Resilience
from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import settings_for

TIMEOUT = 0.3
BOUND = 1.25 * TIMEOUT + 0.25  # the guard's tick, plus scheduling slack on a busy CI machine


async def closed_at(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from ``started`` until the server closed the connection (EOF or reset)."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    return time.monotonic() - started


async def test_silent_and_stalled_connections_are_closed_within_the_bound(
    tmp_path: Path,
) -> None:
    settings = settings_for(
        tmp_path,
        port=1,  # replaced by a free port below
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        keep_alive_timeout=TIMEOUT,
    )
    app = create_app(settings, resilience=Resilience(clock=FakeClock()))
    config = server_config(app, settings)
    config.port = 0
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)  # real-sleep-ok: real uvicorn start-up, bounded
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]

        async def connect(first_bytes: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if first_bytes:
                writer.write(first_bytes)
                await writer.drain()
            return reader, writer

        started = time.monotonic()
        stalled = [
            *[b""] * 10,  # silent: connect and send nothing
            *[b"GET /health/live HTTP/1.1\r\nHost: x\r\n"] * 10,  # head never finished
            *[  # head complete, body stalls after 10 of 100 bytes
                b"POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"{" * 10
            ]
            * 10,
        ]
        connections = [await connect(data) for data in stalled]
        # One healthy keep-alive connection: answered, then idle, then closed too.
        reader, writer = await connect(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        connections.append((reader, writer))

        waits = await asyncio.wait_for(
            asyncio.gather(*(closed_at(r, started) for r, _ in connections)), 3 * BOUND
        )
        for _, w in connections:
            w.close()
        assert len(waits) == 31
        assert max(waits) < BOUND, waits
        assert min(waits) >= TIMEOUT * 0.9, waits  # not closed early either
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5)
