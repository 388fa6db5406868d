"""The errors a resilient HTTP attempt raises for a transient status or a malformed body."""

from __future__ import annotations

from typing import Any

from netra_resilience.exceptions import NetraError


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
