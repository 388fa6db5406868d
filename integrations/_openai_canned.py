"""Canned replies: the last step of a fallback chain, shaped like the SDK's own answers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.fallback import FallbackArgs
from netra_resilience.llm import (
    CannedReply,
    ResilientStream,
    StreamPolicy,
    open_stream,
    request_of,
    tracker_for,
)

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
