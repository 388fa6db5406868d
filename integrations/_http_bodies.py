"""Response bodies: a failed response buffered for the caller, content-type checks, and an
event-stream body whose read errors reach the circuit breaker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from netra_resilience.context import ResilienceContext
from netra_resilience.llm import report_failure
from netra_resilience.pipeline import Pipeline

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
