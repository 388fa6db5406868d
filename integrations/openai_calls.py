"""Call-level resilience for openai: ``chat.completions.create`` and ``responses.create``.

Cache and fallback need the parsed answer, and the streaming policy needs parsed chunks, so
this layer wraps the SDK call itself (the transport of :mod:`.openai_client` only sees bytes):

    llm = ResilientOpenAI(AsyncOpenAI(), standard_llm_pipeline(cache=AiocacheBackend()))
    reply = await llm.chat.completions.create(model="gpt-4o", messages=[...])

Each call becomes an :class:`~netra_resilience.llm.LlmRequest` that the pipeline's cache key
and fallback chain read; a streaming call (``stream=True``) returns a
:class:`~netra_resilience.llm.ResilientStream` once its first answer chunk has arrived.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import current_context
from netra_resilience.fallback import FallbackArgs
from netra_resilience.llm import (
    Alternate,
    CannedReply,
    LlmRequest,
    ResilientStream,
    StreamPolicy,
    StreamTruncatedError,
    open_stream,
    report_failure,
    request_of,
    tracker_for,
)
from netra_resilience.pipeline import Pipeline

__all__ = [
    "ResilientOpenAI",
    "canned_reply",
    "decode_answer",
    "encode_answer",
    "invoke_openai",
    "openai_alternate",
]

_DEFAULT_POLICY = StreamPolicy()


def _without_retries(client: openai.AsyncOpenAI) -> openai.AsyncOpenAI:
    return client if client.max_retries == 0 else client.with_options(max_retries=0)


def _replayable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Materialise one-shot iterators (a generator of messages) so every attempt, alternate
    and cache key sees the same values instead of an exhausted iterator."""
    return {k: list(v) if isinstance(v, Iterator) else v for k, v in params.items()}


async def invoke_openai(
    client: openai.AsyncOpenAI,
    request: LlmRequest,
    *,
    policy: StreamPolicy = _DEFAULT_POLICY,
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


class ResilientOpenAI:
    """An openai client facade whose ``chat.completions.create`` and ``responses.create``
    run through ``pipeline``.

    The client's own retries are turned off (a copy with ``max_retries=0``): the pipeline is
    the one retry owner. ``clock`` must be the pipeline's clock (stream timeouts use it).
    Give a plain client and a full pipeline (``standard_llm_pipeline``), or a client from
    :func:`resilient_async_openai` and a pipeline holding only cache and fallback.
    """

    __slots__ = ("_client", "_clock", "_pipeline", "_policy", "chat", "responses")

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        pipeline: Pipeline,
        *,
        clock: Clock | None = None,
        stream_policy: StreamPolicy = _DEFAULT_POLICY,
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
        self._client = _without_retries(client)
        self._pipeline = pipeline
        self._clock = clock or SYSTEM_CLOCK
        self._policy = stream_policy
        self.chat = _Chat(self)
        self.responses = _Endpoint(self, "responses")

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The wrapped client (``max_retries=0``), for calls this facade does not cover."""
        return self._client

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    async def create(self, kind: str, params: Mapping[str, Any]) -> Any:
        """Run one call of API ``kind`` (``"chat"``/``"responses"``) through the pipeline."""
        request = LlmRequest(kind, _replayable(params))
        return await self._pipeline.execute(self._invoke, request)

    async def _invoke(self, request: LlmRequest) -> Any:
        return await invoke_openai(
            self._client,
            request,
            policy=self._policy,
            clock=self._clock,
            pipeline=self._pipeline,
            dependency=self._pipeline.name,
        )


class _Endpoint:
    __slots__ = ("_kind", "_owner")

    def __init__(self, owner: ResilientOpenAI, kind: str) -> None:
        self._owner = owner
        self._kind = kind

    async def create(self, **params: Any) -> Any:
        """Same arguments as the SDK's ``create``; returns its result (or a
        :class:`ResilientStream` for ``stream=True``)."""
        return await self._owner.create(self._kind, params)


class _Chat:
    __slots__ = ("completions",)

    def __init__(self, owner: ResilientOpenAI) -> None:
        self.completions = _Endpoint(owner, "chat")


def openai_alternate(
    name: str,
    client: openai.AsyncOpenAI,
    *,
    model: str | None = None,
    pipeline: Pipeline | None = None,
    stream_policy: StreamPolicy = _DEFAULT_POLICY,
    clock: Clock | None = None,
    **overrides: Any,
) -> Alternate:
    """A fallback-chain step: the same request sent to ``client`` (another base URL,
    deployment or provider's OpenAI-compatible endpoint), optionally with another ``model``
    and parameter ``overrides``. ``pipeline`` gives it its own breaker (name it ``name``)."""
    target = _without_retries(client)
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


# -- canned replies ------------------------------------------------------------------------
_ids = itertools.count(1)


def _chat_completion(text: str, model: str, created: int) -> ChatCompletion:
    return ChatCompletion.construct(
        id=f"netra-canned-{next(_ids)}",
        object="chat.completion",
        created=created,
        model=model,
        choices=[
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
    )


def _chat_chunk(text: str, model: str, created: int) -> ChatCompletionChunk:
    return ChatCompletionChunk.construct(
        id=f"netra-canned-{next(_ids)}",
        object="chat.completion.chunk",
        created=created,
        model=model,
        choices=[
            {"index": 0, "finish_reason": "stop", "delta": {"role": "assistant", "content": text}}
        ],
    )


def _response(text: str, model: str, created: int) -> Response:
    return Response.construct(
        id=f"netra-canned-{next(_ids)}",
        object="response",
        created_at=created,
        model=model,
        status="completed",
        output=[
            {
                "id": "netra-canned-message",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        parallel_tool_calls=False,
        tool_choice="none",
        tools=[],
    )


async def _one(value: Any) -> AsyncIterator[Any]:
    yield value


def canned_reply(
    text: str, *, model: str = "netra-canned-reply", clock: Clock | None = None
) -> CannedReply:
    """The last resort of a fallback chain: ``text`` as a completed answer of the right shape
    (``ChatCompletion``, ``Response``, or a one-chunk stream for ``stream=True``)."""
    source = clock or SYSTEM_CLOCK

    async def reply(args: FallbackArgs) -> Any:
        request = request_of(args.args, args.kwargs)
        kind = request.kind if request is not None else "chat"
        created = int(source.now().timestamp())
        if kind == "responses":
            value: Any = _response(text, model, created)
            if request is not None and request.stream:
                event = ResponseCompletedEvent.construct(
                    type="response.completed", response=value, sequence_number=0
                )
                return await _open_canned(event, kind, source)
            return value
        if request is not None and request.stream:
            return await _open_canned(_chat_chunk(text, model, created), kind, source)
        return _chat_completion(text, model, created)

    return reply


async def _open_canned(chunk: Any, kind: str, clock: Clock) -> ResilientStream[Any]:
    async def start() -> AsyncIterator[Any]:
        return _one(chunk)

    return await open_stream(
        start, policy=StreamPolicy(first_token_timeout=None), clock=clock, tracker=tracker_for(kind)
    )


# -- codec for serialising caches -----------------------------------------------------------
def encode_answer(value: Any) -> Any:
    """JSON-safe form of a cached answer (for ``AiocacheBackend(encode=...)`` over Redis)."""
    if isinstance(value, ChatCompletion):
        return {"kind": "chat", "data": value.model_dump(mode="json")}
    if isinstance(value, Response):
        return {"kind": "responses", "data": value.model_dump(mode="json")}
    return {"kind": "raw", "data": value}


def decode_answer(data: Any) -> Any:
    """Inverse of :func:`encode_answer`."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "chat":
        return ChatCompletion.construct(**data["data"])
    if kind == "responses":
        return Response.construct(**data["data"])
    return data.get("data") if isinstance(data, dict) else data
