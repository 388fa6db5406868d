"""``Endpoint``: one address a dependency can be reached at, and the routing rejections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from netra_resilience.exceptions import ExecutionRejectedError

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A scheme/host/port triple (plus free-form ``meta``, e.g. a deployment name).

    Endpoints compare by ``key`` only, so a re-resolved address keeps its breaker, its latency
    history and its sticky sessions across refreshes.
    """

    host: str
    port: int
    scheme: str = "http"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, url: str, **meta: Any) -> Endpoint:
        """``Endpoint.parse("https://10.0.0.7:8443")``; the default port follows the scheme."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.hostname:
            raise ValueError(f"endpoint URL has no host: {url!r}")
        scheme = parts.scheme.lower()
        port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme, 80)
        return cls(parts.hostname, port, scheme, dict(meta))

    @property
    def key(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.key


class EndpointResolutionError(ExecutionRejectedError):
    """Resolution failed and no last-known-good endpoint set is young enough to use.

    A rejection (never retried by the retry strategy): retrying at once cannot help before
    the next resolution attempt, which ``retry_after`` points at when known.
    """


class NoHealthyEndpointError(ExecutionRejectedError):
    """Every endpoint of the pool is open, isolated, evicted or probed down.

    ``retry_after`` is the earliest moment one of them admits a call again (``None`` when
    no breaker will reopen on its own: isolated or probed down).
    """

    def __init__(
        self,
        message: str = "no healthy endpoint",
        *,
        retry_after: float | None = None,
        dependency: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, dependency=dependency)
