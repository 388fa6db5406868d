"""End to end: the real openai SDK, over real sockets, against a tiny HTTP server on loopback.

The server is a few lines of asyncio: each request takes the next scripted behaviour (a JSON
answer, an error status, an SSE stream, a stream cut mid-way, a dropped connection). Only
retry backoffs run on the fake clock; everything else is real loopback I/O.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

from netra_resilience import ResilienceContext, use_context
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.integrations.openai import ResilientOpenAI, resilient_async_openai
from netra_resilience.llm import ResilientStream, StreamPolicy, StreamTruncatedError
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    FAKE_KEY,
    GOOD_STREAM,
    MESSAGES,
    chunk,
    completion,
    http_pipeline,
    warm,
)

pytestmark = pytest.mark.timeout(30)


@dataclass
class Behaviour:
    kind: str  # "json" | "sse" | "cut" | "drop"
    status: int = 200
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackProvider:
    """An OpenAI-shaped HTTP/1.1 server; one connection per request (``Connection: close``)."""

    def __init__(self) -> None:
        self.script: list[Behaviour] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((lines[0], headers, body))
            step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            await self._respond(step, writer)
        finally:
            writer.close()

    async def _respond(self, step: Behaviour, writer: asyncio.StreamWriter) -> None:
        if step.kind == "drop":
            writer.transport.abort()  # no response at all
            return
        if step.kind == "json":
            data = json.dumps(step.payload).encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in step.headers.items())
            writer.write(
                f"HTTP/1.1 {step.status} X\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\n{extra}connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for event in step.payload:
            text = event if isinstance(event, str) else json.dumps(event)
            raw = f"data: {text}\n\n".encode()
            writer.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            await writer.drain()
        if step.kind == "cut":
            writer.transport.abort()  # mid-body, no terminating chunk: an incomplete read
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()


@pytest.fixture
async def provider() -> AsyncIterator[LoopbackProvider]:
    server = LoopbackProvider()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_transport_level_client_over_real_sockets(
    provider: LoopbackProvider, clock: FakeClock
) -> None:
    provider.script = [
        Behaviour("json", 500, {"error": {"message": "boom"}}),
        Behaviour("drop"),
        Behaviour("json", 429, {"error": {"message": "slow"}}, {"retry-after-ms": "300"}),
        Behaviour("json", 200, completion("over the wire")),
    ]
    client = warm(
        resilient_async_openai(
            http_pipeline(clock, attempts=4, minimum_throughput=50),
            api_key=FAKE_KEY,
            base_url=provider.base_url,
        )
    )
    async with client:
        reply = await advance_until_done(
            clock, client.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert reply.choices[0].message.content == "over the wire"
    assert len(provider.requests) == 4
    assert clock.sleeps == [1.0, 1.0, 0.3]
    request_line, headers, body = provider.requests[-1]
    assert request_line == "POST /v1/chat/completions HTTP/1.1"
    assert headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert json.loads(body)["messages"] == MESSAGES


async def test_call_level_streams_and_stale_cache_over_real_sockets(
    provider: LoopbackProvider, clock: FakeClock
) -> None:
    pipeline = standard_llm_pipeline(
        clock=clock,
        total_timeout=None,
        attempt_timeout=None,
        retry=RetryOptions(max_attempts=2, delay=0.5, use_jitter=False),
        cache=AiocacheBackend(),
    )
    sdk = warm(openai.AsyncOpenAI(api_key=FAKE_KEY, base_url=provider.base_url))
    policy = StreamPolicy(first_token_timeout=None, idle_timeout=None)
    llm = ResilientOpenAI(sdk, pipeline, stream_policy=policy)
    ctx = ResilienceContext("chat", user_id="alice")

    async def collect() -> tuple[list[str], BaseException | None]:
        with use_context(ctx):
            stream = await llm.chat.completions.create(
                model="gpt-x", messages=MESSAGES, stream=True
            )
        assert isinstance(stream, ResilientStream)
        texts: list[str] = []
        try:
            async for item in stream:  # a loop, not extend(): keep what arrived before a cut
                texts.append(item.choices[0].delta.content or "")  # noqa: PERF401
        except StreamTruncatedError as exc:
            return texts, exc
        return texts, None

    async def ask() -> str | None:
        with use_context(ctx):
            reply = await llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        content: str | None = reply.choices[0].message.content
        return content

    async with sdk:
        provider.script = [Behaviour("sse", payload=[*GOOD_STREAM, "[DONE]"])]
        assert await advance_until_done(clock, collect()) == (["", "Hel", "lo"], None)

        provider.script = [Behaviour("cut", payload=[chunk("", role="assistant"), chunk("Hal")])]
        texts, error = await advance_until_done(clock, collect())
        assert texts == ["", "Hal"]
        assert isinstance(error, StreamTruncatedError)
        assert isinstance(error.__cause__, openai.APIConnectionError)  # incomplete chunked read
        assert ctx.degradation.reason("llm") == "stream_truncated"

        provider.script = [Behaviour("json", 200, completion("cached over the wire"))]
        assert await advance_until_done(clock, ask()) == "cached over the wire"
        provider.script = [Behaviour("json", 503, {"error": {"message": "down"}})]
        requests_before = len(provider.requests)
        assert await advance_until_done(clock, ask()) == "cached over the wire"
        assert len(provider.requests) == requests_before + 2  # retried once, then stale
        assert ctx.degradation.reason("llm") == "stale_cache"
