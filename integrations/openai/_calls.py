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
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.effects import Effect, current_effect_scope, effect_scope
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.fallback import FallbackArgs
from netra_resilience.integrations.openai._client import (
    DEFAULT_STREAM_POLICY,
    invoke_openai,
    replayable,
    without_retries,
)
from netra_resilience.llm import (
    Budget,
    CannedReply,
    LlmRequest,
    ResilientStream,
    StreamPolicy,
    open_stream,
    request_of,
    tracker_for,
)
from netra_resilience.pipeline import Pipeline
from netra_resilience.validation import ratio

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


class ResilientOpenAI:
    """An openai client facade whose ``chat.completions.create`` and ``responses.create``
    run through ``pipeline``.

    The client's own retries are turned off (a copy with ``max_retries=0``): the pipeline is
    the one retry owner. Stream timeouts run on the pipeline's clock.
    ``budget``: every attempt reserves its worst case and settles to the reported usage (see
    ``invoke_openai``); ``step_down_at`` (a fraction of each limit) refuses the primary model
    earlier, so alternates on cheaper models (``openai_alternate(budget=...)``) answer near
    the limit instead, flagged ``<name>=budget_exhausted`` then ``<name>=fallback``.

    Replay safety (:mod:`netra_resilience.effects`): a chat completion is a ``read``, retried
    on any transient failure. A stateful Responses call (:attr:`LlmRequest.stateful`:
    ``previous_response_id``, ``conversation``, ``store=True``) is ``unsafe``: retried only
    when it provably never reached the provider (connection refused, 429, 503), never after a
    timeout or a reset, which may have produced output on the provider's side (a stream is
    never replayed once a chunk reached the caller, whatever the request). Such calls carry a
    per-call ``Idempotency-Key`` through the resilient transports. ``replay_stateful=True``
    is the explicit opt-in to replay them like reads (with the same key).

    Give a plain client and a full pipeline (``standard_llm_pipeline``), or a client from
    :func:`resilient_async_openai` and a pipeline holding only cache and fallback.
    """

    __slots__ = (
        "_budget",
        "_ceiling",
        "_client",
        "_clock",
        "_pipeline",
        "_policy",
        "_replay_stateful",
        "chat",
        "responses",
    )

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        pipeline: Pipeline,
        *,
        stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
        budget: Budget | None = None,
        step_down_at: float | None = None,
        replay_stateful: bool = False,
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
        self._client = without_retries(client)
        self._pipeline = pipeline
        self._clock = pipeline.clock  # stream timeouts run on the pipeline's clock
        self._policy = stream_policy
        if budget is not None and not isinstance(budget, Budget):
            raise InvalidOptionsError("ResilientOpenAI", "budget", "must be a Budget")
        self._budget = budget
        self._ceiling = (
            1.0 if step_down_at is None else ratio("ResilientOpenAI", "step_down_at", step_down_at)
        )
        self._replay_stateful = bool(replay_stateful)
        self.chat = _Chat(self)
        self.responses = _Endpoint(self, "responses")

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The wrapped client (``max_retries=0``), for calls this facade does not cover."""
        return self._client

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    def as_async_openai(self) -> openai.AsyncOpenAI:
        """This facade in the shape of an ``AsyncOpenAI``, for frameworks that take a client
        (the Agents SDK's and pydantic-ai's OpenAI models): ``chat.completions.create`` and
        ``responses.create`` go through the pipeline, every other attribute (``base_url``,
        ...) is the wrapped client's, and ``with_options(...)`` (a framework asking for
        ``max_retries``) keeps the pipeline as the one retry owner."""
        return cast(openai.AsyncOpenAI, _ClientView(self))

    async def create(self, kind: str, params: Mapping[str, Any]) -> Any:
        """Run one call of API ``kind`` (``"chat"``/``"responses"``) through the pipeline."""
        request = LlmRequest(kind, replayable(params))
        effect = self.effect_of(request)
        if effect is Effect.READ:
            with effect_scope(effect):
                return await self._pipeline.execute(self._invoke, request)
        with effect_scope(effect, idempotency_key=f"netra-{uuid.uuid4().hex}"):
            return await self._pipeline.execute(self._invoke, request)

    def effect_of(self, request: LlmRequest) -> Effect:
        """``read`` for completions; ``unsafe`` for stateful requests unless
        ``replay_stateful`` (then ``idempotent``: replayed with the same key)."""
        if not request.stateful:
            return Effect.READ
        return Effect.IDEMPOTENT if self._replay_stateful else Effect.UNSAFE

    async def _invoke(self, request: LlmRequest) -> Any:
        scope = current_effect_scope()
        if scope is not None:
            scope.begin_attempt()  # this attempt's HTTP request reuses the call's key
        return await invoke_openai(
            self._client,
            request,
            policy=self._policy,
            clock=self._clock,
            pipeline=self._pipeline,
            dependency=self._pipeline.name,
            budget=self._budget,
            budget_ceiling=self._ceiling,
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


class _ClientView:
    __slots__ = ("_owner", "chat", "responses")

    def __init__(self, owner: ResilientOpenAI) -> None:
        self._owner = owner
        self.chat = owner.chat
        self.responses = owner.responses

    def with_options(self, **_options: Any) -> _ClientView:
        return self  # the wrapped client has max_retries=0: retries are the pipeline's

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner.client, name)
