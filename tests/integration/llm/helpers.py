"""Shared builders for the LLM call-path tests: fake provider payloads and scripted upstreams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai
from openai._base_client import get_platform

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.llm import LLM_BREAKER_FAILURE, TRANSIENT_LLM_FAILURE, llm_retry_after
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.retry import Backoff, RetryOptions
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.testing import FakeClock
from netra_resilience.timeout import TimeoutOptions

FAKE_KEY = "sk-test-NEVER-LEAK-0123456789abcdef"
BASE_URL = "http://llm.test/v1"
MESSAGES: list[Any] = [{"role": "user", "content": "What is 2+2?"}]


def completion(text: str = "4", *, model: str = "gpt-x", **choice: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, **choice.pop("message", {})}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": choice.get("finish_reason", "stop"), "message": message}
        ],
    }


def chunk(
    text: str | None = None, *, finish: str | None = None, role: str | None = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if text is not None:
        delta["content"] = text
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": finish, "delta": delta}],
    }


def sse_event(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


def sse_body(*chunks: dict[str, Any], done: bool = True) -> bytes:
    return b"".join(sse_event(c) for c in chunks) + (sse_event("[DONE]") if done else b"")


GOOD_STREAM = (chunk("", role="assistant"), chunk("Hel"), chunk("lo", finish="stop"))


def sse_response(body: bytes | AsyncIterator[bytes], status: int = 200) -> httpx2.Response:
    headers = {"content-type": "text/event-stream"}
    if isinstance(body, bytes):
        return httpx2.Response(status, headers=headers, content=body)
    return httpx2.Response(status, headers=headers, stream=_Stream(body))


class _Stream(httpx2.AsyncByteStream):
    def __init__(self, parts: AsyncIterator[bytes]) -> None:
        self._parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._parts:
            yield part

    async def aclose(self) -> None:
        return None


async def parts_then(
    parts: list[bytes], end: Callable[[], Any] | None = None
) -> AsyncIterator[bytes]:
    """Yield ``parts``, then ``await end()`` (hang, raise, ...) if given."""
    for part in parts:
        yield part
    if end is not None:
        await end()


async def hang() -> None:
    await asyncio.Event().wait()


Handler = Callable[[httpx2.Request], httpx2.Response | Exception]


class Upstream:
    """A scripted fake provider: each request takes the next step (the last one repeats).

    A step is a response, an exception instance (raised), or a callable ``request -> step``.
    ``calls`` records every request (body already read), to prove attempt counts.
    """

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls: list[httpx2.Request] = []

    def script(self, *steps: Any) -> None:
        self.steps = list(steps)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.calls.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if callable(step) and not isinstance(step, httpx2.Response):
            step = step(request)
            if asyncio.iscoroutine(step):
                step = await step
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, dict):
            return httpx2.Response(200, json=step)
        assert isinstance(step, httpx2.Response)
        return step

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.calls]


def state_of(strategy: Any) -> CircuitState:
    """The breaker's state (a call, so type checkers do not narrow it across awaits)."""
    state: CircuitState = strategy.state
    return state


def warm(client: openai.AsyncOpenAI) -> openai.AsyncOpenAI:
    """Skip the SDK's one-time platform probe (it runs in a thread, i.e. in real time, which
    would let a fake-clock driver jump over armed timeouts while it runs)."""
    client._platform = get_platform()
    return client


def plain_client(upstream: Upstream, *, max_retries: int = 0, **kwargs: Any) -> openai.AsyncOpenAI:
    """An AsyncOpenAI on the scripted upstream. ``max_retries=0`` by default so the wrappers
    keep this (warmed) instance instead of an unwarmed ``with_options`` copy."""
    http = httpx2.AsyncClient(transport=upstream.transport())
    client = openai.AsyncOpenAI(
        api_key=FAKE_KEY, base_url=BASE_URL, http_client=http, max_retries=max_retries, **kwargs
    )
    return warm(client)


def http_pipeline(
    clock: FakeClock,
    *,
    name: str = "llm",
    attempts: int = 3,
    delay: float = 1.0,
    max_server_delay: float = 60.0,
    attempt_timeout: float | None = None,
    minimum_throughput: int = 4,
    failure_ratio: float = 0.5,
    break_duration: float = 30.0,
    breaker: bool = True,
    telemetry: TelemetryListener | None = None,
) -> Pipeline:
    """retry -> breaker -> attempt timeout, deterministic (no jitter), on the fake clock."""
    builder = PipelineBuilder(name, clock=clock, telemetry=telemetry)
    builder.add_retry(
        RetryOptions(
            max_attempts=attempts,
            backoff=Backoff.CONSTANT,
            delay=delay,
            use_jitter=False,
            should_handle=TRANSIENT_LLM_FAILURE,
            retry_after=llm_retry_after(clock),
            max_server_delay=max_server_delay,
        )
    )
    if breaker:
        builder.add_circuit_breaker(
            CircuitBreakerOptions(
                failure_ratio=failure_ratio,
                minimum_throughput=minimum_throughput,
                sampling_duration=60.0,
                break_duration=break_duration,
                should_handle=LLM_BREAKER_FAILURE,
                retry_after=None,
            )
        )
    if attempt_timeout is not None:
        builder.add_timeout(TimeoutOptions(timeout=attempt_timeout))
    return builder.build()
