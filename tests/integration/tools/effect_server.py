"""A real loopback HTTP tool server that records side effects (an e-mail sent, a refund).

Each ``POST /send`` is answered from a script: ``"commit_stall"`` commits the effect and then
never answers (the response is lost after the upstream did the work), ``"commit"`` commits
and answers, a number answers that status *without* committing (429/503: not processed).
A request whose ``Idempotency-Key`` already committed is answered from the stored result at
once, the way Stripe does, so it never commits twice. ``GET /lookup`` commits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    key: str | None
    committed_before: int
    """How many effects were committed when this request arrived."""


@dataclass
class EffectServer:
    script: list[str | int] = field(default_factory=lambda: ["commit_stall"])
    effects: list[str | None] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> EffectServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def _next(self) -> str | int:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            key = headers.get("idempotency-key")
            self.requests.append(Seen(method, path, key, len(self.effects)))
            self.arrived.set()
            if method == "GET":
                await self._lookup(writer)
                return
            if key is not None and key in self.effects:
                await _answer(writer, 200, {"sent": True, "replayed": True})
                return
            action = self._next()
            if isinstance(action, int):
                await _answer(writer, action, {"error": "not processed"}, retry_after="1")
                return
            self.effects.append(key)
            self.committed.set()
            if action == "commit_stall":
                await self._release.wait()  # the work is done; the answer never comes
                return
            await _answer(writer, 200, {"sent": True, "text": json.loads(body)["text"]})
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def _lookup(self, writer: asyncio.StreamWriter) -> None:
        if self._next() == "commit_stall":  # a read that stalls: nothing is committed
            await self._release.wait()
            return
        await _answer(writer, 200, {"found": True})


async def _answer(
    writer: asyncio.StreamWriter, status: int, payload: Any, *, retry_after: str | None = None
) -> None:
    body = json.dumps(payload).encode()
    extra = f"retry-after: {retry_after}\r\n" if retry_after and status in (429, 503) else ""
    writer.write(
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
