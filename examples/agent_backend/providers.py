"""The two external dependencies the agent talks to: an LLM provider and an HTTP tool.

Each has a real implementation (the openai SDK; an HTTP GET with httpx) and a simulated one
that needs no key and no server. The agent does not know which one it got.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from netra_resilience import Pipeline
from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.integrations.openai import invoke_openai
from netra_resilience.llm import (
    LlmRequest,
    StreamPolicy,
    StreamTruncatedError,
    open_stream,
    report_failure,
    tracker_for,
)
from netra_resilience.routing import Endpoint


class MalformedResponseError(Exception):
    """The provider answered something that is not a usable completion.

    ``transient`` tells the retry and the breaker to treat it like a provider failure (a
    proxy's HTML error page, a truncated body): a retry may well get a proper answer.
    """

    transient = True


class LlmProvider(Protocol):
    """``complete(request)``: a completion, or for ``stream=True`` a :class:`ResilientStream`
    already holding its first answer chunk (see :func:`~netra_resilience.llm.open_stream`)."""

    async def complete(self, request: LlmRequest) -> Any: ...

    def bind(self, pipeline: Pipeline, policy: StreamPolicy) -> None:
        """The LLM pipeline (a stream cut after its first chunk counts in its breaker) and
        the stream time limits."""


def delta_text(chunk: Any) -> str:
    """The text a chat-completion chunk adds (empty for role-only or final chunks)."""
    choices = getattr(chunk, "choices", None) or ()
    for choice in choices:
        content = getattr(getattr(choice, "delta", None), "content", None)
        if isinstance(content, str):
            return content
    return ""


def answer_text(completion: Any) -> str:
    """The assistant's text, or :class:`MalformedResponseError` when there is none."""
    choices = getattr(completion, "choices", None)
    if not choices:
        raise MalformedResponseError("completion without choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        raise MalformedResponseError("completion without text")
    return content


def last_user_message(request: LlmRequest) -> str:
    messages = request.params.get("messages") or []
    for message in reversed(list(messages)):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


class SimulatedLlm:
    """A stand-in provider: answers after ``latency`` seconds, shaped like the openai SDK's.

    Streams word by word; ``between_chunks`` (the demo's ``llm_stream`` fault switch) runs
    before every chunk after the first, so an injected latency stalls a stream mid-answer.
    """

    def __init__(
        self, *, clock: Clock, latency: float = 0.005, between_chunks: Pipeline | None = None
    ) -> None:
        self._clock = clock
        self._latency = latency
        self._between = between_chunks
        self._pipeline: Pipeline | None = None
        self._policy = StreamPolicy()
        self.calls = 0

    def bind(self, pipeline: Pipeline, policy: StreamPolicy) -> None:
        self._pipeline = pipeline
        self._policy = policy

    async def complete(self, request: LlmRequest) -> Any:
        self.calls += 1
        if self._latency:
            await self._clock.sleep(self._latency)
        completion = self._completion(request)
        if not request.stream:
            return completion
        context = current_context()
        pipeline = self._pipeline

        async def on_truncated(error: StreamTruncatedError) -> None:
            await report_failure(pipeline, error, context)

        async def start() -> AsyncIterator[ChatCompletionChunk]:
            return self._chunks(answer_text(completion), completion.model)

        return await open_stream(
            start,
            policy=self._policy,
            clock=self._clock,
            tracker=tracker_for("chat"),
            dependency="llm",
            context=context,
            on_truncated=on_truncated,
        )

    async def _chunks(self, text: str, model: str) -> AsyncIterator[ChatCompletionChunk]:
        words = text.split(" ")
        for index, word in enumerate(words):
            if index and self._between is not None:
                await self._between.execute(_nothing)
            last = index == len(words) - 1
            yield ChatCompletionChunk.construct(
                id=f"sim-{self.calls}",
                object="chat.completion.chunk",
                created=int(time.time()),
                model=model,
                choices=[
                    {
                        "index": 0,
                        "finish_reason": "stop" if last else None,
                        "delta": {"content": word if last else word + " "},
                    }
                ],
            )

    def _completion(self, request: LlmRequest) -> ChatCompletion:
        text = last_user_message(request)
        system = ""
        for message in request.params.get("messages") or []:
            if isinstance(message, Mapping) and message.get("role") == "system":
                system = str(message.get("content", ""))
        used = re.search(r"Tool result: (.*)$", system)
        answer = f"(simulated {request.model}) You said: {text!r}."
        if used:
            answer += f" The tool says: {used.group(1)}"
        return ChatCompletion.construct(
            id=f"sim-{self.calls}",
            object="chat.completion",
            created=int(time.time()),
            model=request.model or "simulated",
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": answer},
                }
            ],
        )


async def _nothing() -> None:
    return None


class OpenAIProvider:
    """The real openai SDK (``max_retries=0``: the pipeline is the one retry owner)."""

    def __init__(self, *, api_key: str, base_url: str | None, clock: Clock) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
        self._clock = clock
        self._pipeline: Pipeline | None = None
        self._policy = StreamPolicy()

    def bind(self, pipeline: Pipeline, policy: StreamPolicy) -> None:
        self._pipeline = pipeline
        self._policy = policy

    async def complete(self, request: LlmRequest) -> Any:
        return await invoke_openai(
            self.client, request, policy=self._policy, clock=self._clock, pipeline=self._pipeline
        )

    async def aclose(self) -> None:
        await self.client.close()


# -- the external tool ---------------------------------------------------------------------
class ToolBackend(Protocol):
    async def fetch(self, endpoint: Endpoint, query: str) -> dict[str, Any]: ...


class SimulatedTool:
    """A stand-in for an external HTTP API (weather, search, ...), one answer per query."""

    def __init__(self, *, clock: Clock, latency: float = 0.002) -> None:
        self._clock = clock
        self._latency = latency
        self.calls = 0

    async def fetch(self, endpoint: Endpoint, query: str) -> dict[str, Any]:
        self.calls += 1
        if self._latency:
            await self._clock.sleep(self._latency)
        return {"result": f"{len(query.split())} words looked up", "served_by": endpoint.host}


class HttpToolError(Exception):
    """The tool answered with an error status. Carries ``status_code`` and ``retry_after`` so
    the tool's retry, limiter and breaker classify it (429/5xx transient, others not)."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"tool answered HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after
        self.transient = status_code in (408, 429) or status_code >= 500


class HttpTool:
    """``GET {NETRA_TOOL_URL}?q=<query>`` on the endpoint the pool picked; expects JSON."""

    def __init__(self, url: str) -> None:
        import httpx

        from netra_resilience.hints import parse_retry_after_headers

        self._parse_retry_after = parse_retry_after_headers
        self._url = httpx.URL(url)
        # Inner retries off: the tool's pipeline owns retries and timeouts.
        self._client = httpx.AsyncClient(timeout=None, transport=httpx.AsyncHTTPTransport())

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.parse(str(self._url.copy_with(path="/", query=None)))

    async def fetch(self, endpoint: Endpoint, query: str) -> dict[str, Any]:
        url = self._url.copy_with(scheme=endpoint.scheme, host=endpoint.host, port=endpoint.port)
        response = await self._client.get(url, params={"q": query})
        if response.status_code >= 400:
            retry_after = self._parse_retry_after(response.headers, datetime.now(UTC))
            await response.aclose()
            raise HttpToolError(response.status_code, retry_after)
        data = response.json()
        if not isinstance(data, dict):
            raise MalformedResponseError("tool answered JSON that is not an object")
        return data

    async def aclose(self) -> None:
        await self._client.aclose()
