"""A fake LLM provider speaking the OpenAI chat-completions and Anthropic messages wire
formats, for the agent-framework adapter tests (no API key, no network).

It behaves like a tiny tool-using model, so the real frameworks run their real loops:

* when the request offers a tool named in ``tool_calls`` and no tool result came back yet
  since the last user message, it asks for that tool (with the planned arguments);
* after a tool result it answers ``"Tool said: <result>"``;
* otherwise it answers ``"Echo: <last user text>"``.

``fail = (status, headers)`` makes every request fail. Served two ways: ``transport()`` (an
``httpx2.MockTransport``) and ``serve()`` (a real HTTP/1.1 server on loopback).

``sdk_client`` / ``anthropic_client`` build the real SDK clients on it, ``Recorder`` keeps the
events a run sends (shared by the adapter tests and ``bench/adapters.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx2
import openai
from anthropic._base_client import get_platform as anthropic_platform
from openai._base_client import get_platform as openai_platform

from netra_resilience.engine import RunResult, RunStatus

FAKE_KEY = "sk-test-NEVER-LEAK-0123456789abcdef"
BASE_URL = "http://llm.test/v1"
ANTHROPIC_URL = "http://llm.test"


class FakeProvider:
    def __init__(self) -> None:
        self.tool_calls: dict[str, dict[str, Any]] = {}
        self.fail: tuple[int, dict[str, str]] | None = None
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []

    # -- behaviour -------------------------------------------------------------------------
    def respond(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        self.paths.append(path)
        self.requests.append(body)
        if self.fail is not None:
            status, headers = self.fail
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "down"}}
            return status, {"content-type": "application/json", **headers}, _dump(error)
        if path.endswith("/messages"):
            return self._anthropic(body)
        return self._openai(body)

    def _plan(self, offered: list[str], answered: set[str]) -> tuple[str, dict[str, Any]] | None:
        for name in offered:
            if name in self.tool_calls and name not in answered:
                return name, self.tool_calls[name]
        return None

    def _openai(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        messages = body.get("messages", [])
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        later = messages[last_user + 1 :]
        tool_results = [m for m in later if m["role"] == "tool"]
        offered = [t["function"]["name"] for t in body.get("tools", []) or []]
        called = {
            call["id"]: call["function"]["name"]
            for m in later
            for call in m.get("tool_calls") or []
        }
        answered = {called.get(m.get("tool_call_id"), "") for m in tool_results}
        plan = self._plan(offered, answered)
        model = body.get("model", "gpt-x")
        stream = bool(body.get("stream"))
        if plan is not None:
            name, args = plan
            call = {
                "id": f"call_{len(self.requests)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            if stream:
                delta = {"role": "assistant", "tool_calls": [{"index": 0, **call}]}
                return _sse(_chunk(model, delta, None), _chunk(model, {}, "tool_calls"))
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return _ok(_completion(model, message, "tool_calls"))
        if tool_results:
            text = f"Tool said: {_text(tool_results[-1]['content'])}"
        else:
            user = messages[last_user]["content"] if last_user >= 0 else ""
            text = f"Echo: {_text(user)}"
        if stream:
            half = len(text) // 2
            return _sse(
                _chunk(model, {"role": "assistant", "content": ""}, None),
                _chunk(model, {"content": text[:half]}, None),
                _chunk(model, {"content": text[half:]}, "stop"),
            )
        return _ok(_completion(model, {"role": "assistant", "content": text}, "stop"))

    def _anthropic(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        messages = body.get("messages", [])
        last_user = -1
        for i, m in enumerate(messages):
            blocks = m["content"] if isinstance(m["content"], list) else []
            if m["role"] == "user" and not any(b.get("type") == "tool_result" for b in blocks):
                last_user = i
        results = [
            b
            for m in messages[last_user + 1 :]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        ]
        offered = [t["name"] for t in body.get("tools", []) or []]
        called = {
            b["id"]: b["name"]
            for m in messages[last_user + 1 :]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_use"
        }
        plan = self._plan(offered, {called.get(b.get("tool_use_id"), "") for b in results})
        model = body.get("model", "claude-x")
        if plan is not None:
            name, args = plan
            block = {"type": "tool_use", "id": f"toolu_{len(self.requests)}", "name": name}
            content: list[dict[str, Any]] = [{**block, "input": args}]
            stop = "tool_use"
        else:
            if results:
                text = f"Tool said: {_text(results[-1]['content'])}"
            else:
                text = f"Echo: {_text(messages[last_user]['content'] if last_user >= 0 else '')}"
            content = [{"type": "text", "text": text}]
            stop = "end_turn"
        message = {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 5},
        }
        if not body.get("stream"):
            return _ok(message)
        return _anthropic_sse(message)

    # -- serving ---------------------------------------------------------------------------
    def transport(self) -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            body = json.loads(request.content or b"{}")
            status, headers, data = self.respond(request.url.path, body)
            return httpx2.Response(status, headers=headers, content=data)

        return httpx2.MockTransport(handle)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """A real HTTP/1.1 server on 127.0.0.1 (one request per connection); yields its
        ``http://127.0.0.1:PORT`` root."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                path = lines[0].split(" ")[1].split("?")[0]
                status, out_headers, data = self.respond(path, json.loads(raw or b"{}"))
                extra = "".join(f"{k}: {v}\r\n" for k, v in out_headers.items())
                writer.write(
                    f"HTTP/1.1 {status} X\r\n{extra}content-length: {len(data)}\r\n"
                    f"connection: close\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass  # the client went away
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        try:
            yield f"http://{host}:{port}"
        finally:
            server.close()
            await server.wait_closed()


def sdk_client(provider: FakeProvider, base_url: str = BASE_URL) -> openai.AsyncOpenAI:
    http = (
        httpx2.AsyncClient(transport=provider.transport())
        if base_url == BASE_URL
        else httpx2.AsyncClient()
    )
    # max_retries=0 here, not with_options(): a copy would lose the probed platform and
    # probe again in a thread, real time in which a fake clock jumps over attempt timeouts
    client = openai.AsyncOpenAI(
        api_key=FAKE_KEY, base_url=base_url, http_client=http, max_retries=0
    )
    client._platform = openai_platform()  # skip the SDK's threaded platform probe
    return client


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


TOOL_RUN_EVENTS = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_thinking",
    "agent_completed",
]
"""What a client sees of a run in which the model calls one tool, then answers."""


def assert_weather_answered(
    result: RunResult, calls: list[str], provider: FakeProvider, sink: Recorder
) -> None:
    """The Paris weather run over the chat completions API: one tool call, two model calls."""
    assert result.status is RunStatus.OK, result.exception
    assert result.output == "Tool said: sunny in Paris"
    assert calls == ["Paris"]
    assert provider.paths == ["/v1/chat/completions"] * 2
    assert sink.types == TOOL_RUN_EVENTS


def anthropic_client(
    provider: FakeProvider, base_url: str = ANTHROPIC_URL
) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` on ``provider`` (its mock transport, or a real server at
    ``base_url``), SDK retries off: the pipeline under test is the one retry owner."""
    http = (
        httpx2.AsyncClient(transport=provider.transport())
        if base_url == ANTHROPIC_URL
        else httpx2.AsyncClient()
    )
    client = anthropic.AsyncAnthropic(
        api_key=FAKE_KEY, base_url=base_url, http_client=http, max_retries=0
    )
    client._platform = anthropic_platform()  # skip the SDK's threaded platform probe
    return client


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(part.get("text", part.get("content", ""))) for part in content)
    return str(content)


def _dump(data: Any) -> bytes:
    return json.dumps(data).encode()


def _ok(data: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return 200, {"content-type": "application/json"}, _dump(data)


def _completion(model: str, message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "delta": delta}],
    }


def _sse(*chunks: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    body = b"".join(b"data: " + _dump(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return 200, {"content-type": "text/event-stream"}, body


def _anthropic_sse(message: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {**message, "content": []}}),
    ]
    for index, block in enumerate(message["content"]):
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "usage": {"output_tokens": 5},
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = b"".join(
        f"event: {name}\n".encode() + b"data: " + _dump(data) + b"\n\n" for name, data in events
    )
    return 200, {"content-type": "text/event-stream"}, body
