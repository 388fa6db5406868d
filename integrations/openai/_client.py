"""Resilient ``AsyncOpenAI`` clients (transport level) and openai failure classification.

openai 3.x sends every request through an ``httpx2.AsyncClient``. These constructors give it
a :class:`~netra_resilience.integrations.httpx2.ResilientAsyncTransport` and turn the SDK's own
retries off (``max_retries=0``), so the pipeline is the one retry owner: no 3 x 3 attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import current_context
from netra_resilience.exceptions import TimeoutRejectedError
from netra_resilience.integrations.http._common import UpstreamStatusError
from netra_resilience.integrations.http.httpx2 import sdk_http_client, sdk_http_client_like
from netra_resilience.llm import (
    Alternate,
    Budget,
    LlmRequest,
    MeteredTracker,
    Reservation,
    StreamPolicy,
    StreamTruncatedError,
    check_answer,
    is_transient_status,
    open_stream,
    rate_limit_delay,
    report_failure,
    report_rate_limit,
    request_of,
    tracker_for,
    usage_of,
    with_stream_usage,
)
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.predicates import OutcomePredicate


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
    budget: Budget | None = None,
    budget_ceiling: float = 1.0,
) -> Any:
    """Make one SDK call for ``request``; for ``stream=True`` open the stream up to its first
    answer chunk (see :func:`~netra_resilience.llm.open_stream`). A stream cut later is
    reported to ``pipeline``'s circuit breakers.

    With a ``budget`` the call's worst case is reserved first (``BudgetExhaustedError``
    before anything is sent, at ``budget_ceiling`` of each limit), then settled to the
    reported ``usage``: a completion at once, a stream when it ends (a chat stream asks for
    its usage chunk; a stream closed or cut before it keeps its worst case). A failed call is
    released; a timed-out or cancelled one keeps its input."""
    if request.kind == "chat":
        resource: Any = client.chat.completions
    elif request.kind == "responses":
        resource = client.responses
    else:
        raise ValueError(f"unsupported LLM request kind {request.kind!r}")
    create = resource.create
    context = current_context()
    held: Reservation | None = None
    if budget is not None:
        request = with_stream_usage(request)
        held = await budget.reserve(request, context, ceiling=budget_ceiling, dependency=dependency)
    try:
        if not request.stream:
            # The raw response keeps the headers: a spent provider quota pauses the limiter.
            raw = await resource.with_raw_response.create(**request.params)
            result = raw.parse()
            report_rate_limit(pipeline, rate_limit_delay(raw.headers, clock or SYSTEM_CLOCK))
            if held is not None:
                await held.settle(usage_of(result))
            return check_answer(request, result)  # JSON asked, not JSON: the next model
        stream = await _open(
            create,
            request,
            policy=policy,
            clock=clock,
            pipeline=pipeline,
            dependency=dependency,
            held=held,
        )
        headers = getattr(getattr(stream.source, "response", None), "headers", None)
        if isinstance(headers, Mapping):
            report_rate_limit(pipeline, rate_limit_delay(headers, clock or SYSTEM_CLOCK))
        return stream
    except BaseException as error:
        if held is not None:
            await held.fail(error)  # a no-op once the stream settled
        raise


async def _open(
    create: Any,
    request: LlmRequest,
    *,
    policy: StreamPolicy,
    clock: Clock | None,
    pipeline: Pipeline | None,
    dependency: str,
    held: Reservation | None,
) -> Any:
    context = current_context()
    tracker = MeteredTracker(tracker_for(request.kind))

    async def on_truncated(error: StreamTruncatedError) -> None:
        await report_failure(pipeline, error, context)

    async def on_end(stream: Any) -> None:
        if held is not None:
            await held.settle(tracker.usage)  # None (no usage chunk): the worst case stays

    async def start() -> Any:
        return await create(**request.params)

    return await open_stream(
        start,
        policy=policy,
        clock=clock,
        tracker=tracker,
        dependency=dependency,
        context=context,
        on_truncated=on_truncated,
        on_end=on_end,
    )


def openai_alternate(
    name: str,
    client: openai.AsyncOpenAI,
    *,
    model: str | None = None,
    pipeline: Pipeline | None = None,
    stream_policy: StreamPolicy = DEFAULT_STREAM_POLICY,
    clock: Clock | None = None,
    provider: str | None = None,
    context_window: int | None = None,
    capabilities: Iterable[str] | None = None,
    budget: Budget | None = None,
    **overrides: Any,
) -> Alternate:
    """A fallback-chain step: the same request sent to ``client`` (another base URL,
    deployment or provider's OpenAI-compatible endpoint), optionally with another ``model``
    and parameter ``overrides``. ``pipeline`` gives it its own breaker (name it ``name``).

    ``provider``, ``context_window`` and ``capabilities`` let the chain pick this step by the
    failure's class (see ``FallbackChain``). ``budget``: the same budget as the primary's,
    held at this step's model price (a cheaper model may fit where the primary did not);
    a cost budget must know the price of ``model`` (checked here)."""
    target = without_retries(client)
    changes = {**overrides, **({"model": model} if model is not None else {})}
    if budget is not None and model is not None:
        budget.require_price("openai_alternate", "model", model)

    async def call(*args: Any, **kwargs: Any) -> Any:
        request = request_of(args, kwargs)
        if request is None:
            raise TypeError("an openai alternate needs the call's LlmRequest")
        if changes:
            request = request.with_params(**changes)
        return await invoke_openai(
            target,
            request,
            policy=stream_policy,
            clock=clock,
            pipeline=pipeline,
            dependency=name,
            budget=budget,
        )

    return Alternate(
        name=name,
        call=call,
        pipeline=pipeline,
        provider=provider,
        context_window=context_window,
        capabilities=frozenset(capabilities) if capabilities is not None else None,
    )


def is_openai_transient(exc: BaseException) -> bool:
    """Connection errors and timeouts, 408/409/429/5xx (``x-should-retry`` wins), malformed
    bodies and attempt timeouts are transient; other 4xx and everything else are not."""
    if isinstance(exc, openai.APIStatusError):
        return is_transient_status(exc.status_code, exc.response.headers)
    if isinstance(exc, openai.APIConnectionError | openai.APIResponseValidationError):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, UpstreamStatusError | StreamTruncatedError):
        return exc.transient
    return isinstance(exc, TimeoutRejectedError | json.JSONDecodeError | httpx2.TransportError)


def _transient(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return exc is not None and is_openai_transient(exc)


OPENAI_TRANSIENT = OutcomePredicate(_transient, "transient openai failure")
"""Predicate for ``RetryOptions.should_handle`` / ``CircuitBreakerOptions.should_handle``."""


def resilient_async_openai(
    pipeline: Pipeline,
    *,
    inner_transport: httpx2.AsyncBaseTransport | None = None,
    validate_json: bool = True,
    **client_kwargs: Any,
) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` whose every HTTP request runs through ``pipeline``.

    ``client_kwargs`` go to ``AsyncOpenAI`` (``api_key``, ``base_url``, ``timeout``, ...);
    ``max_retries`` is forced to 0 (any other value is refused). ``inner_transport`` does the
    I/O (default: ``httpx2.AsyncHTTPTransport`` with the SDK's connection limits; pass one
    with ``proxy=`` when you need a proxy). ``validate_json`` makes a 2xx JSON body that does
    not parse a retryable failure. Streams are covered up to their headers, plus breaker
    reporting of mid-stream read errors; use :class:`ResilientOpenAI` for first-token policy,
    caching and fallbacks.
    """
    http_client = sdk_http_client(
        openai,
        pipeline,
        owner="resilient_async_openai",
        client_kwargs=client_kwargs,
        inner_transport=inner_transport,
        validate_json=validate_json,
    )
    return openai.AsyncOpenAI(max_retries=0, http_client=http_client, **client_kwargs)


def make_resilient(
    client: openai.AsyncOpenAI,
    pipeline: Pipeline,
    *,
    inner_transport: httpx2.AsyncBaseTransport | None = None,
    validate_json: bool = True,
) -> openai.AsyncOpenAI:
    """A copy of an existing client (``with_options``) with ``max_retries=0`` whose requests
    run through ``pipeline``.

    The copy keeps the client's credentials, base URL, headers and timeout, and reuses its
    transport (connection pool) unless ``inner_transport`` is given: closing either client
    closes the pool. A client already made resilient is unwrapped first, never stacked.
    A proxy configured through the original client's mounts is not carried over: pass a
    transport built with ``proxy=`` as ``inner_transport`` instead.
    """
    http_client = sdk_http_client_like(
        openai, client, pipeline, inner_transport=inner_transport, validate_json=validate_json
    )
    return client.with_options(max_retries=0, http_client=http_client)
