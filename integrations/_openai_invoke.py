"""One openai SDK call per :class:`~netra_resilience.llm.LlmRequest`, and the fallback step
that sends the same request elsewhere; shared by :class:`ResilientOpenAI` and its alternates."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import openai

from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.llm import (
    Alternate,
    LlmRequest,
    StreamPolicy,
    StreamTruncatedError,
    open_stream,
    report_failure,
    request_of,
    tracker_for,
)
from netra_resilience.pipeline import Pipeline

DEFAULT_STREAM_POLICY = StreamPolicy()


def without_retries(client: openai.AsyncOpenAI) -> openai.AsyncOpenAI:
    return client if client.max_retries == 0 else client.with_options(max_retries=0)


def replayable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Materialise one-shot iterators (a generator of messages) so every attempt, alternate
    and cache key sees the same values instead of an exhausted iterator."""
    return {k: list(v) if isinstance(v, Iterator) else v for k, v in params.items()}


async def invoke_openai(
    client: openai.AsyncOpenAI,
    request: LlmRequest,
    *,
    policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    pipeline: Pipeline | None = None,
    dependency: str = "llm",
) -> Any:
    """Make one SDK call for ``request``; for ``stream=True`` open the stream up to its first
    answer chunk (see :func:`~netra_resilience.llm.open_stream`). A stream cut later is
    reported to ``pipeline``'s circuit breakers."""
    if request.kind == "chat":
        create: Any = client.chat.completions.create
    elif request.kind == "responses":
        create = client.responses.create
    else:
        raise ValueError(f"unsupported LLM request kind {request.kind!r}")
    if not request.stream:
        return await create(**request.params)
    context = current_context()

    async def on_truncated(error: StreamTruncatedError) -> None:
        await report_failure(pipeline, error, context)

    async def start() -> Any:
        return await create(**request.params)

    return await open_stream(
        start,
        policy=policy,
        clock=clock,
        tracker=tracker_for(request.kind),
        dependency=dependency,
        context=context,
        on_truncated=on_truncated,
    )


def openai_alternate(
    name: str,
    client: openai.AsyncOpenAI,
    *,
    model: str | None = None,
    pipeline: Pipeline | None = None,
    stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    **overrides: Any,
) -> Alternate:
    """A fallback-chain step: the same request sent to ``client`` (another base URL,
    deployment or provider's OpenAI-compatible endpoint), optionally with another ``model``
    and parameter ``overrides``. ``pipeline`` gives it its own breaker (name it ``name``)."""
    target = without_retries(client)
    changes = {**overrides, **({"model": model} if model is not None else {})}

    async def call(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args, kwargs)
        if request is None:
            raise TypeError("an openai alternate needs the call's LlmRequest")
        if changes:
            request = request.with_params(**changes)
        return await invoke_openai(
            target, request, policy=stream_policy, clock=clock, pipeline=pipeline, dependency=name
        )

    return Alternate(name=name, call=call, pipeline=pipeline)
