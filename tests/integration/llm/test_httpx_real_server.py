"""The httpx transport over a real loopback socket: a 503 with Retry-After, then an answer."""

from __future__ import annotations

import asyncio

import httpx

from netra_resilience.integrations.http.httpx import ResilientAsyncTransport
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import http_pipeline


async def test_retry_after_from_a_real_server_is_honoured_and_the_body_replayed() -> None:
    bodies: list[bytes] = []
    statuses = [b"503 Service Unavailable", b"200 OK"]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        bodies.append(await reader.readexactly(length))
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        payload = b'{"ok": true}' if status.startswith(b"200") else b'{"error": "busy"}'
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nretry-after: 7\r\ncontent-type: application/json\r\n"
            b"content-length: "
            + str(len(payload)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + payload
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = FakeClock()
    transport = ResilientAsyncTransport(
        httpx.AsyncHTTPTransport(), http_pipeline(clock, breaker=False)
    )
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            response = await advance_until_done(
                clock, client.post(f"http://127.0.0.1:{port}/v1/items", json={"q": "hi"})
            )
    finally:
        server.close()
        await server.wait_closed()
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert bodies == [b'{"q":"hi"}', b'{"q":"hi"}']  # the request body was replayed
    assert clock.sleeps == [7.0]  # the server's Retry-After, on the fake clock
