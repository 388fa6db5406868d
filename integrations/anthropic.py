"""anthropic integration: resilient ``AsyncAnthropic`` clients, failure classification,
``messages.create`` through the LLM pipeline, OpenAI <-> Anthropic fallback chains, and a
tool-using agent loop run as a resilient engine.

::

    llm = ResilientAnthropic(AsyncAnthropic(), resilience.llm(canned_reply=canned_message("Busy.")))
    reply = await llm.messages.create(model="claude-sonnet-4-6", max_tokens=512, messages=[...])

anthropic 2.x sends every request through an ``httpx2.AsyncClient`` (as openai 3.x does), so
the same two layers serve it; use one or both, never a retry in both (nested retries multiply):

* **Transport** (:func:`resilient_async_anthropic`, :func:`make_resilient`): every HTTP
  request runs through a pipeline; the SDK's own retries are off (``max_retries=0``). The SDK
  wraps whatever its transport raises in ``APIConnectionError``: a refusal of the pipeline
  (an open breaker) arrives as its ``__cause__``, which :func:`is_anthropic_transient` reads.
* **Call** (:class:`ResilientAnthropic`): ``messages.create`` as an
  :class:`~netra_resilience.llm.LlmRequest` of kind ``"messages"`` through a pipeline that may
  hold a response cache (stale answers keyed on the request, streams never stored), a
  fallback chain and the streaming rules (``stream=True`` is retried or replaced only before
  its first delta; ``message_stop`` is the only clean end, an ``error`` event such as
  ``overloaded_error`` a failure). A successful answer whose ``anthropic-ratelimit-*-remaining``
  reads 0 pauses the pipeline's limiters until its ``-reset`` time.

Classification (shared with openai, :func:`~netra_resilience.llm.is_transient_failure`):
connection errors, timeouts, 408/409/429/5xx and **529 overloaded** (also as an error event in
a 200 stream) are retried and counted by the breaker, ``retry-after`` honoured; 400/401/403/404
are the caller's (never retried, never opening the breaker). ``prompt is too long`` is a
context overflow (the chain steps to a bigger window), ``stop_reason == "refusal"`` a
content-policy answer (another provider), ``max_tokens`` an unusable answer.

Mixed chains: :func:`anthropic_chat_alternate` is an Anthropic step in an OpenAI chat chain,
:func:`openai_messages_alternate` an OpenAI(-compatible) step in an Anthropic chain; each
translates the request and the answer (text conversations: no tools, no JSON mode, declared as
their capabilities so the chain skips them for such requests).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from netra_resilience.integrations import missing_extra

try:
    import anthropic
    import httpx2
    from anthropic.types import Message, RawMessageStreamEvent
    from pydantic import TypeAdapter
except ImportError as error:
    if error.name is None or error.name.split(".")[0] not in ("anthropic", "httpx2", "pydantic"):
        raise
    raise missing_extra("anthropic", error) from error

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import current_context
from netra_resilience.effects import Effect, effect_scope
from netra_resilience.engine import EventType, RunEvents, RunRequest, Tool, ToolFailure
from netra_resilience.exceptions import (
    ExecutionRejectedError,
    InvalidOptionsError,
    TimeoutRejectedError,
)
from netra_resilience.fallback import FallbackArgs
from netra_resilience.integrations.http.httpx2 import (
    UpstreamStatusError,
    sdk_http_client,
    sdk_http_client_like,
)
from netra_resilience.llm import (
    Alternate,
    CannedReply,
    LlmRequest,
    ResilientStream,
    StreamPolicy,
    StreamTruncatedError,
    is_transient_failure,
    open_stream,
    rate_limit_delay,
    report_failure,
    report_rate_limit,
    request_of,
    tracker_for,
)
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.predicates import OutcomePredicate

__all__ = [
    "ANTHROPIC_TRANSIENT",
    "AnthropicEngine",
    "ResilientAnthropic",
    "anthropic_alternate",
    "anthropic_chat_alternate",
    "canned_message",
    "decode_answer",
    "encode_answer",
    "invoke_anthropic",
    "is_anthropic_transient",
    "make_resilient",
    "openai_messages_alternate",
    "resilient_async_anthropic",
]

MESSAGES = "messages"
"""The :attr:`LlmRequest.kind` of a ``messages.create`` call."""

DEFAULT_STREAM_POLICY = StreamPolicy()
DEFAULT_MAX_TOKENS = 1024
"""``max_tokens`` of a translated chat request that set none (Anthropic requires one)."""

_ids = itertools.count(1)
_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


# -- transport level -----------------------------------------------------------------------


def without_retries(client: anthropic.AsyncAnthropic) -> anthropic.AsyncAnthropic:
    return client if client.max_retries == 0 else client.with_options(max_retries=0)


def resilient_async_anthropic(
    pipeline: Pipeline,
    *,
    inner_transport: httpx2.AsyncBaseTransport | None = None,
    validate_json: bool = True,
    **client_kwargs: Any,
) -> anthropic.AsyncAnthropic:
    """An ``AsyncAnthropic`` whose every HTTP request runs through ``pipeline``.

    ``client_kwargs`` go to ``AsyncAnthropic`` (``api_key``, ``base_url``, ``timeout``, ...);
    ``max_retries`` must be 0 (any other value is refused). ``inner_transport`` does the I/O
    (default: ``httpx2.AsyncHTTPTransport`` with the SDK's connection limits).
    ``validate_json`` makes a 2xx JSON body that does not parse a retryable failure.
    """
    http_client = sdk_http_client(
        anthropic,
        pipeline,
        owner="resilient_async_anthropic",
        client_kwargs=client_kwargs,
        inner_transport=inner_transport,
        validate_json=validate_json,
    )
    return anthropic.AsyncAnthropic(max_retries=0, http_client=http_client, **client_kwargs)


def make_resilient(
    client: anthropic.AsyncAnthropic,
    pipeline: Pipeline,
    *,
    inner_transport: httpx2.AsyncBaseTransport | None = None,
    validate_json: bool = True,
) -> anthropic.AsyncAnthropic:
    """A copy of ``client`` (credentials, base URL, headers, timeout, connection pool) with
    ``max_retries=0`` whose requests run through ``pipeline``; a client already made
    resilient is unwrapped first, never stacked."""
    http_client = sdk_http_client_like(
        anthropic, client, pipeline, inner_transport=inner_transport, validate_json=validate_json
    )
    return client.with_options(max_retries=0, http_client=http_client)


def is_anthropic_transient(exc: BaseException) -> bool:
    """Connection errors and timeouts, 408/409/429/5xx and 529 (``x-should-retry`` wins; an
    error event inside a stream by its type), malformed bodies and attempt timeouts are
    transient; other 4xx are not, nor a refusal of the transport's pipeline (an open breaker,
    wrapped by the SDK in ``APIConnectionError``)."""
    if isinstance(exc, anthropic.APIConnectionError) and isinstance(
        exc.__cause__, ExecutionRejectedError
    ):
        return isinstance(exc.__cause__, TimeoutRejectedError)
    if isinstance(exc, anthropic.APIStatusError | anthropic.APIResponseValidationError):
        return is_transient_failure(exc)
    if isinstance(exc, anthropic.APIConnectionError):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, UpstreamStatusError | StreamTruncatedError):
        return exc.transient
    return isinstance(exc, TimeoutRejectedError | json.JSONDecodeError | httpx2.TransportError)


def _transient(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return exc is not None and is_anthropic_transient(exc)


ANTHROPIC_TRANSIENT = OutcomePredicate(_transient, "transient anthropic failure")
"""Predicate for ``RetryOptions.should_handle`` / ``CircuitBreakerOptions.should_handle``."""

# -- call level ----------------------------------------------------------------------------


def encode_answer(value: Any) -> Any:
    """JSON-safe form of a cached answer (for ``AiocacheBackend(encode=...)`` over Redis)."""
    if isinstance(value, Message):
        return {"kind": MESSAGES, "data": value.model_dump(mode="json")}
    return {"kind": "raw", "data": value}


def decode_answer(data: Any) -> Any:
    """Inverse of :func:`encode_answer`."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == MESSAGES:
        return Message.model_validate(data["data"])
    return data.get("data") if isinstance(data, dict) else data


def replayable(params: Mapping[str, Any]) -> dict[str, Any]:
    """One-shot iterators materialised, so every attempt and the cache key see the values."""
    return {k: list(v) if isinstance(v, Iterator) else v for k, v in params.items()}


async def invoke_anthropic(
    client: anthropic.AsyncAnthropic,
    request: LlmRequest,
    *,
    policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    pipeline: Pipeline | None = None,
    dependency: str = "llm",
) -> Any:
    """One ``messages.create`` for ``request``; ``stream=True`` opens the stream up to its
    first delta (:func:`~netra_resilience.llm.open_stream`) and a stream cut later is
    reported to ``pipeline``'s breakers. A spent provider limit pauses its limiters."""
    if request.kind != MESSAGES:
        raise ValueError(f"an anthropic client answers messages requests, not {request.kind!r}")
    source = clock or SYSTEM_CLOCK
    if not request.stream:
        raw = await client.messages.with_raw_response.create(**request.params)
        report_rate_limit(pipeline, rate_limit_delay(raw.headers, source))
        return await raw.parse()
    context = current_context()

    async def on_truncated(error: StreamTruncatedError) -> None:
        await report_failure(pipeline, error, context)

    async def start() -> Any:
        return await client.messages.create(**request.params)

    stream = await open_stream(
        start,
        policy=policy,
        clock=clock,
        tracker=tracker_for(MESSAGES),
        dependency=dependency,
        context=context,
        on_truncated=on_truncated,
    )
    headers = getattr(getattr(stream.source, "response", None), "headers", None)
    if isinstance(headers, Mapping):
        report_rate_limit(pipeline, rate_limit_delay(headers, source))
    return stream


class ResilientAnthropic:
    """An anthropic client facade whose ``messages.create`` runs through ``pipeline``.

    The client's own retries are turned off (a copy with ``max_retries=0``): the pipeline is
    the one retry owner. Stream timeouts run on the pipeline's clock. A Messages call keeps no
    state at the provider, so it is a ``read``: retried on any transient failure.

    Give a plain client and a full pipeline (``resilience.llm()``), or a client from
    :func:`resilient_async_anthropic` and a pipeline holding only cache and fallback.
    """

    __slots__ = ("_client", "_clock", "_pipeline", "_policy", "messages")

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        pipeline: Pipeline,
        *,
        stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    ) -> None:
        if not isinstance(client, anthropic.AsyncAnthropic):
            raise InvalidOptionsError(
                "ResilientAnthropic", "client", f"must be an AsyncAnthropic: {client!r}"
            )
        if not isinstance(pipeline, Pipeline):
            raise InvalidOptionsError("ResilientAnthropic", "pipeline", "must be a Pipeline")
        if not isinstance(stream_policy, StreamPolicy):
            raise InvalidOptionsError(
                "ResilientAnthropic", "stream_policy", "must be a StreamPolicy"
            )
        self._client = without_retries(client)
        self._pipeline = pipeline
        self._clock = pipeline.clock
        self._policy = stream_policy
        self.messages = _Messages(self)

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The wrapped client (``max_retries=0``), for calls this facade does not cover."""
        return self._client

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    async def create(self, params: Mapping[str, Any]) -> Any:
        """Run one ``messages.create`` with ``params`` through the pipeline."""
        request = LlmRequest(MESSAGES, replayable(params))
        with effect_scope(Effect.READ):
            return await self._pipeline.execute(self._invoke, request)

    async def _invoke(self, request: LlmRequest) -> Any:
        return await invoke_anthropic(
            self._client,
            request,
            policy=self._policy,
            clock=self._clock,
            pipeline=self._pipeline,
            dependency=self._pipeline.name,
        )


class _Messages:
    __slots__ = ("_owner",)

    def __init__(self, owner: ResilientAnthropic) -> None:
        self._owner = owner

    async def create(self, **params: Any) -> Any:
        """The SDK's ``messages.create`` arguments; its ``Message`` (or, for
        ``stream=True``, a :class:`~netra_resilience.llm.ResilientStream` of its events)."""
        return await self._owner.create(params)


# -- answers of our own: canned replies and translations ---------------------------------


def _message(text: str, model: str, stop_reason: str = "end_turn", usage: Any = None) -> Message:
    return Message.model_validate(
        {
            "id": f"msg_netra_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 0, "output_tokens": 0},
        }
    )


def _message_events(message: Message) -> list[Any]:
    """The events (the SDK's types) a Messages stream of ``message`` (text blocks) is."""
    head = message.model_dump(mode="json")
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {**head, "content": []}}]
    for index, block in enumerate(message.content):
        text = getattr(block, "text", "")
        events += [
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": text},
            },
            {"type": "content_block_stop", "index": index},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": message.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": message.usage.output_tokens},
        },
        {"type": "message_stop"},
    ]
    return [_EVENT.validate_python(event) for event in events]


async def _iterate(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _open_events(events: AsyncIterator[Any], clock: Clock) -> ResilientStream[Any]:
    async def start() -> AsyncIterator[Any]:
        return events

    return await open_stream(
        start,
        policy=StreamPolicy(first_token_timeout=None),
        clock=clock,
        tracker=tracker_for(MESSAGES),
    )


def canned_message(
    text: str, *, model: str = "netra-canned-reply", clock: Clock | None = None
) -> CannedReply:
    """The last resort of an Anthropic chain: ``text`` as a finished ``Message`` (for
    ``stream=True`` a stream of its events, ending with ``message_stop``)."""
    source = clock or SYSTEM_CLOCK

    async def reply(args: FallbackArgs) -> Any:
        request = request_of(args.args, args.kwargs)
        message = _message(text, model)
        if request is not None and request.stream:
            return await _open_events(_iterate(_message_events(message)), source)
        return message

    return reply


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text of its text blocks/parts."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or ():
        kind = part.get("type") if isinstance(part, Mapping) else getattr(part, "type", None)
        if kind not in ("text", "input_text", "output_text"):
            raise ValueError(f"only text content can be translated, got a {kind!r} part")
        parts.append(part["text"] if isinstance(part, Mapping) else part.text)
    return "".join(parts)


_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}
_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
}
_SHARED_PARAMS = ("temperature", "top_p", "stream")


def chat_to_messages(params: Mapping[str, Any], model: str, max_tokens: int) -> dict[str, Any]:
    """Chat-completions parameters (text conversation) as Messages parameters: system and
    developer messages become ``system``, ``stop`` becomes ``stop_sequences``."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in params.get("messages") or ():
        role = message.get("role")
        text = _text_of(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant") and not message.get("tool_calls"):
            messages.append({"role": role, "content": text})
        else:
            raise ValueError(f"a {role!r} message cannot be translated (text conversations only)")
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": params.get("max_completion_tokens") or params.get("max_tokens") or max_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    stop = params.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    out.update({k: params[k] for k in _SHARED_PARAMS if params.get(k) is not None})
    return out


def messages_to_chat(params: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Messages parameters (text conversation) as chat-completions parameters."""
    messages: list[dict[str, Any]] = []
    system = params.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for message in params.get("messages") or ():
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"a {role!r} message cannot be translated")
        messages.append({"role": role, "content": _text_of(message.get("content"))})
    out: dict[str, Any] = {"model": model, "messages": messages}
    if params.get("max_tokens"):
        out["max_tokens"] = params["max_tokens"]
    if params.get("stop_sequences"):
        out["stop"] = list(params["stop_sequences"])
    out.update({k: params[k] for k in _SHARED_PARAMS if params.get(k) is not None})
    return out


def message_to_chat(message: Message) -> Any:
    """A ``Message`` as an openai ``ChatCompletion``."""
    from openai.types.chat import ChatCompletion

    text = "".join(getattr(b, "text", "") for b in message.content if b.type == "text")
    usage = message.usage
    return ChatCompletion.model_validate(
        {
            "id": message.id,
            "object": "chat.completion",
            "created": 0,
            "model": message.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": _STOP_TO_FINISH.get(message.stop_reason or "", "stop"),
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
    )


def chat_to_message(completion: Any) -> Message:
    """An openai ``ChatCompletion`` (first choice) as a ``Message``."""
    choice = completion.choices[0]
    usage = completion.usage
    return _message(
        choice.message.content or "",
        completion.model,
        _FINISH_TO_STOP.get(choice.finish_reason or "", "end_turn"),
        {
            "input_tokens": usage.prompt_tokens if usage else 0,
            "output_tokens": usage.completion_tokens if usage else 0,
        },
    )


async def _events_as_chunks(stream: ResilientStream[Any], model: str) -> AsyncIterator[Any]:
    """A Messages event stream as chat-completion chunks (text deltas, then the finish)."""
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict[str, Any], finish: str | None) -> Any:
        return ChatCompletionChunk.model_validate(
            {
                "id": "chatcmpl-netra",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    yield chunk({"role": "assistant", "content": ""}, None)
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            yield chunk({"content": event.delta.text}, None)
        elif event.type == "message_delta" and event.delta.stop_reason is not None:
            yield chunk({}, _STOP_TO_FINISH.get(event.delta.stop_reason, "stop"))


async def _chunks_as_events(stream: ResilientStream[Any], model: str) -> AsyncIterator[Any]:
    """A chat-completion chunk stream as Messages events (one text block)."""
    adapter = _EVENT
    head = _message("", model).model_dump(mode="json")
    yield adapter.validate_python({"type": "message_start", "message": {**head, "content": []}})
    yield adapter.validate_python(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    )
    stop = "end_turn"
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                yield adapter.validate_python(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": choice.delta.content},
                    }
                )
            if choice.finish_reason is not None:
                stop = _FINISH_TO_STOP.get(choice.finish_reason, "end_turn")
    for event in (
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 0},
        },
        {"type": "message_stop"},
    ):
        yield adapter.validate_python(event)


def _text_only(capabilities: Iterable[str] | None) -> frozenset[str]:
    return frozenset(capabilities) if capabilities is not None else frozenset()


def _changed(request: LlmRequest, model: str | None, overrides: Mapping[str, Any]) -> LlmRequest:
    changes = {**overrides, **({"model": model} if model is not None else {})}
    return request.with_params(**changes) if changes else request


def anthropic_alternate(
    name: str,
    client: anthropic.AsyncAnthropic,
    *,
    model: str | None = None,
    pipeline: Pipeline | None = None,
    stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    provider: str | None = "anthropic",
    context_window: int | None = None,
    capabilities: Iterable[str] | None = None,
    **overrides: Any,
) -> Alternate:
    """A step of an Anthropic chain: the same Messages request sent to ``client`` (another
    key, region or model), optionally with another ``model`` and parameter ``overrides``.
    ``pipeline`` gives it its own breaker (name it ``name``)."""
    target = without_retries(client)

    async def call(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args, kwargs)
        if request is None or request.kind != MESSAGES:
            raise TypeError("an anthropic alternate needs the call's messages LlmRequest")
        return await invoke_anthropic(
            target,
            _changed(request, model, overrides),
            policy=stream_policy,
            clock=clock,
            pipeline=pipeline,
            dependency=name,
        )

    return Alternate(
        name=name,
        call=call,
        pipeline=pipeline,
        provider=provider,
        context_window=context_window,
        capabilities=frozenset(capabilities) if capabilities is not None else None,
    )


def anthropic_chat_alternate(
    name: str,
    client: anthropic.AsyncAnthropic,
    *,
    model: str,
    pipeline: Pipeline | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    provider: str | None = "anthropic",
    context_window: int | None = None,
    capabilities: Iterable[str] | None = None,
) -> Alternate:
    """An Anthropic step in an OpenAI chat-completions chain: the chat request translated to
    a Messages request for ``model`` (``max_tokens`` when the request sets none), the answer
    back as a ``ChatCompletion`` (a stream as chat chunks). Text conversations only: its
    ``capabilities`` default to none, so the chain skips it for tool or JSON-mode requests."""
    target = without_retries(client)
    source = clock or SYSTEM_CLOCK

    async def call(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args, kwargs)
        if request is None or request.kind != "chat":
            raise TypeError("an anthropic chat alternate needs the call's chat LlmRequest")
        translated = LlmRequest(MESSAGES, chat_to_messages(request.params, model, max_tokens))
        answer = await invoke_anthropic(
            target,
            translated,
            policy=stream_policy,
            clock=clock,
            pipeline=pipeline,
            dependency=name,
        )
        if not translated.stream:
            return message_to_chat(answer)
        return await open_stream(
            lambda: _started(_events_as_chunks(answer, model)),
            policy=StreamPolicy(first_token_timeout=None, idle_timeout=None),
            clock=source,
            tracker=tracker_for("chat"),
            dependency=name,
        )

    return Alternate(
        name=name,
        call=call,
        pipeline=pipeline,
        provider=provider,
        context_window=context_window,
        capabilities=_text_only(capabilities),
    )


async def _started(iterator: AsyncIterator[Any]) -> AsyncIterator[Any]:
    return iterator


def openai_messages_alternate(
    name: str,
    client: Any,
    *,
    model: str,
    pipeline: Pipeline | None = None,
    stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    provider: str | None = "openai",
    context_window: int | None = None,
    capabilities: Iterable[str] | None = None,
) -> Alternate:
    """An OpenAI(-compatible) step in an Anthropic chain: the Messages request translated to
    chat completions for ``model`` on ``client`` (an ``openai.AsyncOpenAI``), the answer back
    as a ``Message`` (a stream as Messages events). Text conversations only (see
    :func:`anthropic_chat_alternate`)."""
    # openai is this step's extra, not the anthropic adapter's: imported when one is made
    from netra_resilience.integrations.openai import invoke_openai

    target = client if client.max_retries == 0 else client.with_options(max_retries=0)
    source = clock or SYSTEM_CLOCK

    async def call(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args, kwargs)
        if request is None or request.kind != MESSAGES:
            raise TypeError("an openai messages alternate needs the call's messages LlmRequest")
        translated = LlmRequest("chat", messages_to_chat(request.params, model))
        answer = await invoke_openai(
            target,
            translated,
            policy=stream_policy,
            clock=clock,
            pipeline=pipeline,
            dependency=name,
        )
        if not translated.stream:
            return chat_to_message(answer)
        return await _open_events(_chunks_as_events(answer, model), source)

    return Alternate(
        name=name,
        call=call,
        pipeline=pipeline,
        provider=provider,
        context_window=context_window,
        capabilities=_text_only(capabilities),
    )


# -- an agent loop on the Messages API -----------------------------------------------------


def _tool_name(tool: Any) -> str:
    name = getattr(tool, "name", None)
    if not isinstance(name, str) or not callable(getattr(tool, "to_dict", None)):
        raise InvalidOptionsError(
            "AnthropicEngine", "tools", f"must be @beta_async_tool functions, got {tool!r}"
        )
    return name


async def _call_tool(tool: Any, arguments: dict[str, Any]) -> Any:
    return await tool.call(arguments)


def _tool_content(value: Any) -> Any:
    """What a tool returned, as ``tool_result`` content (text, or the SDK's content blocks)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return value
    return json.dumps(value, default=str)


class AnthropicEngine:
    """An engine (``await engine(request, events)``) running a tool-using conversation on
    the Messages API through ``llm``: the model is called until it answers without asking
    for a tool (at most ``max_turns`` calls); the answer is its text.

    ``tools`` are the SDK's ``@beta_async_tool`` functions (their schemas are sent to the
    model). Each model call is an ``agent_thinking`` event; tools run through the engine's
    tool pipelines (``run.tools(name={...})``), and a failed, rate-limited or open-breaker
    tool answers the model with the :class:`~netra_resilience.engine.ToolFailure` as JSON
    (``is_error``), so the model can reason about it. Give ``run.tools()`` to the engine:
    a tool it does not know answers ``unknown_tool``.
    """

    def __init__(
        self,
        llm: ResilientAnthropic,
        *,
        model: str,
        tools: Sequence[Any] = (),
        system: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        max_turns: int = 8,
    ) -> None:
        if not isinstance(llm, ResilientAnthropic):
            raise InvalidOptionsError("AnthropicEngine", "llm", "must be a ResilientAnthropic")
        if not isinstance(model, str) or not model:
            raise InvalidOptionsError("AnthropicEngine", "model", "must be a non-empty string")
        for field, value in (("max_tokens", max_tokens), ("max_turns", max_turns)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionsError("AnthropicEngine", field, f"must be >= 1: {value!r}")
        self.llm = llm
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self.max_turns = max_turns
        self._tools = {_tool_name(tool): tool for tool in tools}

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def tools(self, **options: Mapping[str, Any]) -> list[Tool]:
        """One engine :class:`Tool` per SDK tool, for ``resilience.engine(tools=...)``:
        ``run.tools(get_weather={"effect": "read", "rate": 1})``."""
        unknown = sorted(set(options) - set(self._tools))
        if unknown:
            raise InvalidOptionsError(
                "AnthropicEngine.tools",
                unknown[0],
                f"is not a tool of the engine (tools: {', '.join(self._tools) or 'none'})",
            )
        return [Tool(name, _call_tool, **dict(options.get(name, {}))) for name in self._tools]

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        messages: list[dict[str, Any]] = [{"role": "user", "content": request.input}]
        params: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens}
        if self.system is not None:
            params["system"] = self.system
        if self._tools:
            params["tools"] = [tool.to_dict() for tool in self._tools.values()]
        for _turn in range(self.max_turns):
            await events(EventType.AGENT_THINKING, text="calling the model")
            reply = await self.llm.messages.create(messages=messages, **params)
            uses = [block for block in reply.content if block.type == "tool_use"]
            if not uses:
                return "".join(b.text for b in reply.content if b.type == "text")
            content = [b.model_dump(mode="json", exclude_none=True) for b in reply.content]
            messages.append({"role": "assistant", "content": content})
            results = []
            for use in uses:
                tool = self._tools.get(use.name)
                outcome = await request.tools.call(use.name, tool, use.input, call_id=use.id)
                result: dict[str, Any] = {"type": "tool_result", "tool_use_id": use.id}
                if isinstance(outcome, ToolFailure):
                    result.update(content=json.dumps(outcome.as_dict()), is_error=True)
                else:
                    result["content"] = _tool_content(outcome.value)
                results.append(result)
            messages.append({"role": "user", "content": results})
        raise RuntimeError(f"no answer within {self.max_turns} model calls")
