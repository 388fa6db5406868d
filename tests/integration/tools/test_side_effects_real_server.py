"""Tool effect classes against a real loopback HTTP server that records side effects.

The tool POSTs through the resilient httpx transport (whose own pipeline retries transport
errors); the server commits the effect and stalls past the tool's attempt timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from netra_resilience import Resilience, RetryOptions
from netra_resilience.effects import Effect
from netra_resilience.engine import (
    RunEvents,
    RunRequest,
    Tool,
    ToolFailure,
    ToolFailureReason,
    ToolOk,
    ToolResult,
    wrap_engine,
)
from netra_resilience.integrations.http.httpx import (
    TRANSIENT_HTTPX_FAILURE,
    ResilientAsyncTransport,
)
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.tools.effect_server import EffectServer
from tests.servers import free_port

REAL_IO = 5.0  # bound on real loopback I/O; nothing here waits for a backoff in real time
ATTEMPT = 2.0
DELAY = 0.1


@pytest.fixture
async def server() -> AsyncIterator[EffectServer]:
    async with EffectServer() as running:
        yield running


def http_client(clock: FakeClock, *, transport_retry: bool = True) -> httpx.AsyncClient:
    builder = Resilience(clock=clock).pipeline("send_http")
    if transport_retry:
        builder.add_retry(
            RetryOptions(max_attempts=3, delay=DELAY, should_handle=TRANSIENT_HTTPX_FAILURE)
        )
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), builder.build())
    return httpx.AsyncClient(transport=transport, timeout=None)


def send_tool(client: httpx.AsyncClient, urls: list[str]) -> Any:
    async def send(text: str) -> Any:
        url = urls.pop(0) if len(urls) > 1 else urls[0]
        response = await client.post(f"{url}/send", json={"text": text})
        response.raise_for_status()
        return response.json()

    return send


async def agent(request: RunRequest, events: RunEvents) -> ToolResult:
    return await request.tools.call("send", "the invoice")


async def backoff(clock: FakeClock) -> None:
    """Wait (real I/O, bounded) until the retry's backoff is on the clock, then jump it."""
    loop = asyncio.get_running_loop()
    until = loop.time() + REAL_IO
    while (deadline := clock.next_deadline()) is None:
        assert loop.time() < until, "the retry never started its backoff"
        await asyncio.sleep(0.001)  # real-sleep-ok: a real socket unwinds
    await clock.advance(deadline - clock.monotonic())


async def start(clock: FakeClock, tool: Tool) -> asyncio.Task[Any]:
    stack = wrap_engine(agent, tools=[tool], clock=clock)
    return asyncio.ensure_future(stack.run(RunRequest(run_id="run-1")))


async def test_default_unsafe_tool_commits_once_and_the_agent_sees_outcome_unknown(
    clock: FakeClock, server: EffectServer
) -> None:
    async with http_client(clock) as client:
        tool = Tool("send", send_tool(client, [server.url]), timeout=ATTEMPT, retry_delay=DELAY)
        assert tool.effect is Effect.UNSAFE and tool.max_attempts == 3  # the defaults
        run = await start(clock, tool)
        await asyncio.wait_for(server.committed.wait(), REAL_IO)
        await clock.advance(ATTEMPT)  # the response never comes: the attempt times out
        result = await asyncio.wait_for(run, REAL_IO)

    assert len(server.effects) == 1 and len(server.requests) == 1  # sent once, never again
    failure = result.output
    assert isinstance(failure, ToolFailure)
    assert failure.reason is ToolFailureReason.OUTCOME_UNKNOWN and failure.call_id == "send-1"
    assert result.degradation == {"send": "outcome_unknown"}
    assert server.requests[0].key == failure.idempotency_key  # the header went out anyway


async def test_idempotent_tool_retries_with_the_same_key_and_the_server_dedups(
    clock: FakeClock, server: EffectServer
) -> None:
    async with http_client(clock) as client:
        tool = Tool(
            "send",
            send_tool(client, [server.url]),
            effect=Effect.IDEMPOTENT,
            timeout=ATTEMPT,
            retry_delay=DELAY,
        )
        run = await start(clock, tool)
        await asyncio.wait_for(server.committed.wait(), REAL_IO)
        server.arrived.clear()
        await clock.advance(ATTEMPT)  # attempt 1 times out after the commit
        await backoff(clock)  # the tool's backoff; attempt 2 goes out
        await asyncio.wait_for(server.arrived.wait(), REAL_IO)
        result = await asyncio.wait_for(run, REAL_IO)

    keys = [seen.key for seen in server.requests]
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1]
    assert len(server.effects) == 1  # the dedup kept one effect
    assert isinstance(result.output, ToolOk) and result.output.value["replayed"] is True
    assert result.output.idempotency_key == keys[0]


async def test_read_tool_is_retried_normally(clock: FakeClock, server: EffectServer) -> None:
    server.script = ["commit_stall", "answer"]  # GET: the first stalls, the second answers
    async with http_client(clock) as client:

        async def lookup(text: str) -> Any:
            response = await client.get(f"{server.url}/lookup")
            return response.json()

        tool = Tool("send", lookup, effect=Effect.READ, timeout=ATTEMPT, retry_delay=DELAY)
        run = await start(clock, tool)
        await asyncio.wait_for(server.arrived.wait(), REAL_IO)
        server.arrived.clear()
        await clock.advance(ATTEMPT)
        await backoff(clock)
        await asyncio.wait_for(server.arrived.wait(), REAL_IO)
        result = await asyncio.wait_for(run, REAL_IO)

    assert result.output == ToolOk("send", {"found": True}, "send-1")
    assert [seen.key for seen in server.requests] == [None, None]  # a read carries no key
    assert server.effects == []


@pytest.mark.parametrize("refusal", [503, 429])
async def test_unsafe_tool_answered_429_or_503_is_retried_and_nothing_was_committed_before(
    clock: FakeClock, server: EffectServer, refusal: int
) -> None:
    server.script = [refusal, "commit"]
    async with http_client(clock, transport_retry=False) as client:
        tool = Tool("send", send_tool(client, [server.url]), timeout=None, retry_delay=DELAY)
        result = await advance_until_done(
            clock, wrap_engine(agent, tools=[tool], clock=clock).run(RunRequest(run_id="r"))
        )

    assert isinstance(result.output, ToolOk) and result.output.value["sent"] is True
    assert [(s.committed_before, s.key) for s in server.requests] == [
        (0, result.output.idempotency_key),  # refused: the server committed nothing
        (0, result.output.idempotency_key),  # so the retry was the first to commit
    ]
    assert len(server.effects) == 1


async def test_unsafe_tool_whose_connection_was_refused_is_retried(
    clock: FakeClock, server: EffectServer
) -> None:
    server.script = ["commit"]
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    async with http_client(clock, transport_retry=False) as client:
        tool = Tool(
            "send", send_tool(client, [closed, server.url]), timeout=None, retry_delay=DELAY
        )
        result = await advance_until_done(
            clock, wrap_engine(agent, tools=[tool], clock=clock).run(RunRequest())
        )

    assert isinstance(result.output, ToolOk)
    assert [s.committed_before for s in server.requests] == [0]
    assert len(server.effects) == 1


async def test_the_transport_itself_retries_a_refused_unsafe_request(
    clock: FakeClock, server: EffectServer
) -> None:
    server.script = [503, "commit"]  # the transport's own retry handles the 503
    async with http_client(clock) as client:
        tool = Tool("send", send_tool(client, [server.url]), timeout=None, max_attempts=1)
        result = await advance_until_done(
            clock, wrap_engine(agent, tools=[tool], clock=clock).run(RunRequest())
        )
    assert isinstance(result.output, ToolOk)
    assert [s.committed_before for s in server.requests] == [0, 0]
    assert len({s.key for s in server.requests}) == 1 and len(server.effects) == 1
