"""One implementation of a resilient HTTP transport, shared by the httpx and httpx2 adapters.

It touches requests and responses only through the surface both libraries share
(``request.aread()``, ``response.status_code``/``headers``/``aiter_raw()``/``aclose()``,
``type(response)(...)``), so :mod:`.httpx` and :mod:`.httpx2` are thin subclasses of their
library's ``AsyncBaseTransport`` and neither library is imported here.

Per request:

1. the body is read once (``await request.aread()``), so a generator body replays on every
   attempt;
2. each attempt runs through the pipeline; a transient status (408, 409, 429, 5xx, or
   ``x-should-retry: true``) becomes an :class:`UpstreamStatusError` carrying the status, the
   server's delay (``retry-after-ms``, ``Retry-After`` seconds or HTTP-date) and a buffered
   copy of the response. The failed attempt's connection is released (``aclose``) before the
   retry strategy sleeps;
3. when the pipeline gives up on a status error, the last upstream response is returned as
   is, so the client (the openai SDK) raises its usual typed error with body and headers;
   transport errors are re-raised unchanged, and our own rejections (open breaker, timeout,
   rate limit, full bulkhead) propagate as netra errors: they are the pipeline's decisions;
4. an event-stream body is wrapped so an error while reading it reaches the circuit breaker
   (the attempt itself ended when the headers arrived).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.integrations._http_bodies import (
    ReportingStream,
    buffered_copy,
    is_event_stream,
    is_json,
    read_capped,
)
from netra_resilience.integrations._http_errors import MalformedResponseError, UpstreamStatusError
from netra_resilience.llm import is_transient_status, server_delay
from netra_resilience.pipeline import Pipeline

__all__ = [
    "MAX_ERROR_BODY",
    "HttpResilience",
    "MalformedResponseError",
    "ReportingStream",
    "StatusClassifier",
    "UpstreamStatusError",
    "is_transient_status",
    "server_delay",
]

MAX_ERROR_BODY = 1 << 20
"""Bytes of a failed response's body kept for the caller (error bodies are small)."""


class _Request(Protocol):
    async def aread(self) -> bytes: ...


class _Transport(Protocol):
    async def handle_async_request(self, request: Any) -> Any: ...


StatusClassifier = Callable[[int, Mapping[str, str]], bool]


class HttpResilience:
    """The transport logic: one instance per transport, reused for every request."""

    __slots__ = (
        "_classify",
        "_clock",
        "_error_body_limit",
        "_inner",
        "_pipeline",
        "_stream_wrapper",
        "_validate_json",
    )

    def __init__(
        self,
        inner: _Transport,
        pipeline: Pipeline,
        *,
        clock: Clock | None = None,
        classify_status: StatusClassifier = is_transient_status,
        validate_json: bool = False,
        error_body_limit: int = MAX_ERROR_BODY,
        stream_wrapper: Callable[[Any, Pipeline, ResilienceContext | None], Any] | None = None,
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
        self._inner = inner
        self._pipeline = pipeline
        self._clock = clock or SYSTEM_CLOCK
        self._classify = classify_status
        self._validate_json = validate_json
        self._error_body_limit = error_body_limit
        has_breaker = any(s.kind == "circuit_breaker" for s in pipeline.strategies)
        self._stream_wrapper = stream_wrapper if has_breaker else None

    @property
    def inner(self) -> _Transport:
        return self._inner

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    async def handle(self, request: _Request) -> Any:
        """Send ``request`` through the pipeline; see the module docstring for the rules."""
        await request.aread()  # buffer once: every attempt re-sends the same bytes
        outcome = await self._pipeline.execute_outcome(self._attempt, request)
        exc = outcome.exception
        if exc is None:
            response: Any = outcome.result
            wrap = self._stream_wrapper
            if wrap is not None and is_event_stream(response.headers):
                response.stream = wrap(response.stream, self._pipeline, current_context())
            return response
        if isinstance(exc, UpstreamStatusError) and exc.response is not None:
            return exc.response
        raise exc

    async def _attempt(self, request: Any) -> Any:
        response = await self._inner.handle_async_request(request)
        status: int = response.status_code
        if status < 400:
            if (
                self._validate_json
                and status != 204
                and request.method != "HEAD"
                and is_json(response.headers)
            ):
                await self._check_json(response, request)
            return response
        headers = response.headers
        if not self._classify(status, headers):
            return response  # a 4xx the caller must see; not a dependency failure
        delay = server_delay(headers, self._clock)
        content, decoded = await read_capped(response, self._error_body_limit)
        copy = buffered_copy(response, content, request, decoded=decoded)
        raise UpstreamStatusError(status, retry_after=delay, response=copy)

    async def _check_json(self, response: Any, request: Any) -> None:
        try:
            await response.aread()
            json.loads(response.content)
        except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError
            content = response.content
            await response.aclose()
            raise MalformedResponseError(
                response.status_code,
                response=buffered_copy(response, content, request, decoded=True),
            ) from None
