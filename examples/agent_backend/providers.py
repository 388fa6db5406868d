"""The two external dependencies the agent talks to: an LLM provider and an HTTP tool.

Each has a real implementation and a simulated one that needs no key and no server:

* the LLM is always reached with the openai SDK. Without ``OPENAI_API_KEY`` the SDK's HTTP
  client talks to :class:`SimulatedOpenAI`, an OpenAI-compatible endpoint served in-process
  through ``httpx2.MockTransport``, so the simulated and the real provider share one path;
* the tool is :class:`HttpTool` (``GET`` with httpx) or :class:`SimulatedTool`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import httpx2
import openai

from netra_resilience.routing import Endpoint

SIMULATED_BASE_URL = "http://simulated-llm.invalid/v1"
"""Where the SDK sends requests for the simulated provider (never resolved: MockTransport)."""


class MalformedResponseError(Exception):
    """The provider answered something that is not a usable answer."""


def answer_text(completion: object) -> str:
    """The assistant's text, or :class:`MalformedResponseError` when there is none."""
    choices = getattr(completion, "choices", None)
    if not choices:
        raise MalformedResponseError("completion without choices")
    content = getattr(getattr(choices[0], "message", None), "content", None)
    if not isinstance(content, str) or not content.strip():
        raise MalformedResponseError("completion without text")
    return content


def delta_text(chunk: object) -> str:
    """The text a chat-completion chunk adds (empty for role-only or final chunks)."""
    for choice in getattr(chunk, "choices", None) or ():
        content = getattr(getattr(choice, "delta", None), "content", None)
        if isinstance(content, str):
            return content
    return ""


# -- the LLM -----------------------------------------------------------------------------------
class SimulatedOpenAI:
    """``POST /v1/chat/completions`` as an ``httpx2.MockTransport`` handler, OpenAI-compatible.

    Answers after ``latency`` seconds (on ``sleep``, the runtime's clock): a JSON completion,
    or for ``stream: true`` an SSE stream with one word per chunk and ``[DONE]`` at the end.
    The answer echoes the question and the tool result the system prompt carries.
    """

    def __init__(self, *, sleep: Callable[[float], Awaitable[None]], latency: float) -> None:
        self._sleep = sleep
        self._latency = latency
        self.calls = 0

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        if self._latency:
            await self._sleep(self._latency)
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return httpx2.Response(404, json={"error": {"message": "unknown endpoint"}})
        params = json.loads(request.content)
        model = str(params.get("model") or "simulated")
        text = simulated_answer(params.get("messages") or [], model)
        completion_id = f"sim-{self.calls}"
        if params.get("stream"):
            return httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=_sse_words(text, model, completion_id),
            )
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return httpx2.Response(200, json=_envelope(completion_id, "chat.completion", model, choice))


def simulated_answer(messages: list[Any], model: str) -> str:
    question = system = ""
    for message in messages:
        if isinstance(message, Mapping):
            if message.get("role") == "user":
                question = str(message.get("content", ""))
            elif message.get("role") == "system":
                system = str(message.get("content", ""))
    answer = f"(simulated {model}) You said: {question!r}."
    used = re.search(r"Tool result: (.*)$", system)
    if used:
        answer += f" The tool says: {used.group(1)}"
    return answer


def _envelope(completion_id: str, kind: str, model: str, choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


async def _sse_words(text: str, model: str, completion_id: str) -> AsyncIterator[bytes]:
    words = text.split(" ")
    for index, word in enumerate(words):
        last = index == len(words) - 1
        delta = {"role": "assistant", "content": word if last else word + " "}
        choice = {"index": 0, "finish_reason": "stop" if last else None, "delta": delta}
        chunk = _envelope(completion_id, "chat.completion.chunk", model, choice)
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def openai_client(
    transport: httpx2.AsyncBaseTransport, *, api_key: str, base_url: str | None
) -> openai.AsyncOpenAI:
    """The SDK client on ``transport``; its own retries off (the LLM preset owns retries)."""
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(transport=transport),
    )


# -- the external tool ---------------------------------------------------------------------
class SimulatedTool:
    """A stand-in for an external HTTP API whose calls do something (file a lookup request
    with a partner, say): each request is one ``effect``, except that a request repeating an
    ``Idempotency-Key`` already done gets the recorded answer, as Stripe-style APIs do."""

    def __init__(self, *, sleep: Callable[[float], Awaitable[None]], latency: float) -> None:
        self._sleep = sleep
        self._latency = latency
        self.calls = 0
        self.effects = 0
        self._done: dict[str, dict[str, Any]] = {}

    async def fetch(
        self, endpoint: Endpoint, query: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        self.calls += 1
        if self._latency:
            await self._sleep(self._latency)
        if idempotency_key is not None and idempotency_key in self._done:
            return self._done[idempotency_key]
        self.effects += 1
        answer = {"result": f"{len(query.split())} words looked up", "served_by": endpoint.host}
        if idempotency_key is not None:
            self._done[idempotency_key] = answer
            if len(self._done) > 10_000:  # a bounded dedup window, like any upstream's
                del self._done[next(iter(self._done))]
        return answer

    async def aclose(self) -> None:
        return None


class HttpToolError(Exception):
    """The tool answered with an error status. ``retry_after`` (seconds) is what the tool's
    retry waits and what pauses its limiter for every caller after a 429."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"tool answered HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after
        self.transient = status_code in (408, 429) or status_code >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value (delay-seconds or an HTTP-date) in seconds; ``None`` if invalid."""
    text = (value or "").strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class HttpTool:
    """``GET {NETRA_TOOL_URL}?q=<query>`` on the endpoint the pool picked; expects JSON. The
    call's key goes out as ``Idempotency-Key`` so the upstream can answer a repeat from its
    record instead of doing the work twice."""

    def __init__(self, url: str) -> None:
        self._url = httpx.URL(url)
        # No client timeout or retries: the tool's pipeline owns both.
        self._client = httpx.AsyncClient(timeout=None)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.parse(str(self._url.copy_with(path="/", query=None)))

    async def fetch(
        self, endpoint: Endpoint, query: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        url = self._url.copy_with(scheme=endpoint.scheme, host=endpoint.host, port=endpoint.port)
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        response = await self._client.get(url, params={"q": query}, headers=headers)
        if response.status_code >= 400:
            raise HttpToolError(
                response.status_code, retry_after_seconds(response.headers.get("retry-after"))
            )
        data = response.json()
        if not isinstance(data, dict):
            raise MalformedResponseError("tool answered JSON that is not an object")
        return data

    async def aclose(self) -> None:
        await self._client.aclose()
