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

from collections.abc import Mapping
from typing import Any

import openai

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.integrations._openai_canned import canned_reply
from netra_resilience.integrations._openai_codec import decode_answer, encode_answer
from netra_resilience.integrations._openai_invoke import (
    DEFAULT_STREAM_POLICY,
    invoke_openai,
    openai_alternate,
    replayable,
    without_retries,
)
from netra_resilience.llm import LlmRequest, StreamPolicy
from netra_resilience.pipeline import Pipeline

__all__ = [
    "ResilientOpenAI",
    "canned_reply",
    "decode_answer",
    "encode_answer",
    "invoke_openai",
    "openai_alternate",
]


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
        stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
        self._client = without_retries(client)
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
        request = LlmRequest(kind, replayable(params))
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
