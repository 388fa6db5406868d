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
   (the attempt itself ended when the headers arrived);
5. inside a call that declared its effect (:func:`~netra_resilience.effects.effect_scope`,
   e.g. an engine tool), a non-safe request (not GET/HEAD/OPTIONS/TRACE) carries the call's
   idempotency key as the ``Idempotency-Key`` header (unless it already has one), the same on
   every retry; and the pipeline's retry does not repeat an ``unsafe`` request that may have
   reached the upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.effects import IDEMPOTENCY_HEADER, current_effect_scope
from netra_resilience.exceptions import NetraError
from netra_resilience.llm import is_transient_status, report_failure, server_delay
from netra_resilience.pipeline import Pipeline


class UpstreamStatusError(NetraError):
    """An HTTP attempt failed with a transient status.

    ``retry_after`` is the server's requested delay in seconds (read by the retry strategy,
    the circuit breaker and the rate limiter through the default ``retry_after_of`` hint);
    ``response`` is a buffered copy of the failed response, which the transport hands back to
    the client when the pipeline gives up. The message names the status only: never the URL,
    whose query string may carry a credential.
    """

    def __init__(
        self,
        status_code: int,
        *,
        retry_after: float | None = None,
        response: Any = None,
        transient: bool = True,
    ) -> None:
        super().__init__(f"upstream responded with HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after
        self.response = response
        self.transient = transient


class MalformedResponseError(UpstreamStatusError):
    """A successful status whose JSON body does not parse (``validate_json=True``)."""

    def __init__(self, status_code: int, *, response: Any = None) -> None:
        super().__init__(status_code, response=response)
        self.args = (f"upstream sent a malformed JSON body with HTTP {status_code}",)


_KEEP_EXTENSIONS = ("http_version", "reason_phrase")
_DROP_HEADERS = frozenset({"content-length", "transfer-encoding"})
_DECODED_DROP_HEADERS = _DROP_HEADERS | {"content-encoding"}


async def read_capped(response: Any, limit: int) -> tuple[bytes, bool]:
    """The body, at most ``limit`` bytes, and whether it is already content-decoded.

    Raw (still encoded) bytes are read when the body is still streaming; a body the inner
    transport already loaded (mock and ASGI transports) is taken decoded. Always closes the
    response, releasing its connection.
    """
    try:
        try:
            return response.content[:limit], True
        except Exception:  # ResponseNotRead: still streaming
            pass
        parts: list[bytes] = []
        size = 0
        async for part in response.aiter_raw():
            parts.append(part)
            size += len(part)
            if size >= limit:
                break
        return b"".join(parts)[:limit], False
    finally:
        await response.aclose()


def buffered_copy(response: Any, content: bytes, request: Any, *, decoded: bool = False) -> Any:
    """A fresh response of the same class holding ``content`` (readable after the original
    connection was released). ``decoded``: ``content`` is already content-decoded."""
    drop = _DECODED_DROP_HEADERS if decoded else _DROP_HEADERS
    # Raw bytes: a non-ASCII header value would not re-encode from its decoded str form.
    headers = [(k, v) for k, v in response.headers.raw if k.decode("latin-1").lower() not in drop]
    extensions = {k: response.extensions[k] for k in _KEEP_EXTENSIONS if k in response.extensions}
    return type(response)(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions=extensions,
    )


def is_json(headers: Mapping[str, str]) -> bool:
    content_type = headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().endswith("json")


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("text/event-stream")


class ReportingStream:
    """Mixin for a response body stream: a read error is reported to the circuit breaker.

    The adapters combine it with their library's ``AsyncByteStream`` base class.
    """

    def __init__(self, inner: Any, pipeline: Pipeline, context: ResilienceContext | None) -> None:
        self._inner = inner
        self._pipeline = pipeline
        self._context = context

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._inner:
                yield part
        except Exception as exc:
            await report_failure(self._pipeline, exc, self._context)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


MAX_ERROR_BODY = 1 << 20
"""Bytes of a failed response's body kept for the caller (error bodies are small)."""


class _Request(Protocol):
    method: str
    headers: Any

    async def aread(self) -> bytes: ...


class _Transport(Protocol):
    async def handle_async_request(self, request: Any) -> Any: ...


StatusClassifier = Callable[[int, Mapping[str, str]], bool]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""RFC 9110 §9.2.1: no side effect requested, so no idempotency key is needed."""


def add_idempotency_key(request: Any) -> None:
    """Give a non-safe request the current call's idempotency key (see the module docstring)."""
    scope = current_effect_scope()
    if scope is None or request.method in SAFE_METHODS or IDEMPOTENCY_HEADER in request.headers:
        return
    key = scope.request_key()
    if key is not None:
        request.headers[IDEMPOTENCY_HEADER] = key


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
        classify_status: StatusClassifier = is_transient_status,
        validate_json: bool = False,
        error_body_limit: int = MAX_ERROR_BODY,
        stream_wrapper: Callable[[Any, Pipeline, ResilienceContext | None], Any] | None = None,
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
        self._inner = inner
        self._pipeline = pipeline
        self._clock = pipeline.clock  # HTTP-date Retry-After is read on the pipeline's clock
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
        add_idempotency_key(request)  # once, before the first attempt: retries reuse it
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
