"""Helpers for the example-backend tests: the app on a fake clock, and a fake OpenAI server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from examples.agent_backend import Settings, create_app
from netra_resilience import Resilience
from netra_resilience.testing import FakeClock

SECRET = "sk-test-NEVER-LEAK-5f3a9c0d1e2b"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Embedded defaults, a private SQLite file, no backoff sleeps, demo switches on."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}",
        "demo_mode": True,
        "simulated_latency": 0.0,
        "retry_delay": 0.0,
        "breaker_seconds": 5.0,
        "llm_timeout": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (schema, health monitor), reached in-process over ASGI."""
    app = create_app(settings, resilience=Resilience(clock=clock))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            yield client


async def chat(client: httpx.AsyncClient, message: str, user: str = "u1") -> httpx.Response:
    return await client.post("/v1/chat", json={"user_id": user, "message": message})


@dataclass
class FakeOpenAI:
    """A minimal OpenAI-compatible HTTP server on loopback (``POST /v1/chat/completions``).

    ``down = True`` makes it answer 500 like a failing provider; every request is recorded
    (path and the Authorization header) so a test can check what the SDK sent.
    """

    down: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(
                {"method": method, "path": path, "authorization": headers.get("authorization")}
            )
            if self.down:
                status, payload = "500 Internal Server Error", {"error": {"message": "boom"}}
            else:
                params = json.loads(body)
                last = params["messages"][-1]["content"]
                status, payload = "200 OK", completion(f"fake-openai answer to: {last}")
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        finally:
            writer.close()


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-fake",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
    }
