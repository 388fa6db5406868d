"""Resilient transport for ``httpx2`` (openai 3.x is built on httpx2).

    transport = ResilientAsyncTransport(httpx2.AsyncHTTPTransport(), pipeline)
    async with httpx2.AsyncClient(transport=transport) as client: ...

Each request runs through ``pipeline`` (one retry owner: leave ``AsyncHTTPTransport(retries=)``
at 0). The rules live in :mod:`._http_common`; this module only binds them to httpx2's types.
"""

from __future__ import annotations

from typing import Any

from netra_resilience.integrations import missing_extra

try:
    import httpx2
except ImportError as error:  # the extra is not installed
    raise missing_extra("httpx2", error) from error

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
    "TRANSIENT_HTTPX2_FAILURE",
    "MalformedResponseError",
    "ResilientAsyncTransport",
    "UpstreamStatusError",
]


class _ReportingStream(ReportingStream, httpx2.AsyncByteStream):
    pass


class ResilientAsyncTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2.AsyncBaseTransport`` that sends every request through a pipeline.

    ``inner`` does the I/O (``httpx2.AsyncHTTPTransport()``, or ``httpx2.MockTransport`` in
    tests) and is closed with this transport. HTTP-date ``Retry-After`` values are read on
    the pipeline's clock. ``validate_json=True`` treats a 2xx JSON response
    whose body does not parse as a transient failure (it reads such bodies eagerly).
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
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
    def inner(self) -> httpx2.AsyncBaseTransport:
        return self._inner

    @property
    def pipeline(self) -> Pipeline:
        return self._core.pipeline

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response: httpx2.Response = await self._core.handle(request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _transient(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    if isinstance(exc, UpstreamStatusError):
        return exc.transient
    return isinstance(exc, httpx2.TransportError | TimeoutRejectedError)


TRANSIENT_HTTPX2_FAILURE = OutcomePredicate(_transient, "transient httpx2 failure")
"""Retry predicate for a pipeline behind this transport: transient statuses, httpx2 transport
errors (connect, read, protocol, timeouts) and attempt timeouts."""
