"""Resilient transport for ``httpx`` (openai 2.x and most tool SDKs are built on httpx).

    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), pipeline)
    async with httpx.AsyncClient(transport=transport) as client: ...

Each request runs through ``pipeline`` (one retry owner: leave ``AsyncHTTPTransport(retries=)``
at 0). The rules live in :mod:`._http_common`; this module only binds them to httpx's types.
"""

from __future__ import annotations

from typing import Any

from netra_resilience.integrations import missing_extra

try:
    import httpx
except ImportError as error:  # the extra is not installed
    raise missing_extra("httpx", error) from error

from netra_resilience.exceptions import TimeoutRejectedError
from netra_resilience.integrations.http._common import (
    HttpResilience,
    MalformedResponseError,
    ReportingStream,
    StatusClassifier,
    UpstreamStatusError,
)
from netra_resilience.llm import is_transient_status
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.predicates import OutcomePredicate

__all__ = [
    "TRANSIENT_HTTPX_FAILURE",
    "MalformedResponseError",
    "ResilientAsyncTransport",
    "UpstreamStatusError",
]


class _ReportingStream(ReportingStream, httpx.AsyncByteStream):
    pass


class ResilientAsyncTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends every request through a pipeline.

    ``inner`` does the I/O (``httpx.AsyncHTTPTransport()``, or ``httpx.MockTransport`` in
    tests) and is closed with this transport. HTTP-date ``Retry-After`` values are read on
    the pipeline's clock. ``validate_json=True`` treats a 2xx JSON response
    whose body does not parse as a transient failure (it reads such bodies eagerly).
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        pipeline: Pipeline,
        *,
        classify_status: StatusClassifier = is_transient_status,
        validate_json: bool = False,
    ) -> None:
        self._core = HttpResilience(
            inner,
            pipeline,
            classify_status=classify_status,
            validate_json=validate_json,
            stream_wrapper=_ReportingStream,
        )
        self._inner = inner

    @property
    def inner(self) -> httpx.AsyncBaseTransport:
        return self._inner

    @property
    def pipeline(self) -> Pipeline:
        return self._core.pipeline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await self._core.handle(request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _transient(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    if isinstance(exc, UpstreamStatusError):
        return exc.transient
    return isinstance(exc, httpx.TransportError | TimeoutRejectedError)


TRANSIENT_HTTPX_FAILURE = OutcomePredicate(_transient, "transient httpx failure")
"""Retry predicate for a pipeline behind this transport: transient statuses, httpx transport
errors (connect, read, protocol, timeouts) and attempt timeouts."""
