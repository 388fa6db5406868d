"""``ResolutionCache``: TTL-cached resolution with last-known-good and recovery detection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from netra_resilience.clock import Clock
from netra_resilience.routing._endpoint import Endpoint, EndpointResolutionError
from netra_resilience.routing._sources import EndpointSource


class ResolutionCache:
    """Resolves at most once per ``refresh_interval``; one resolution at a time.

    On failure (an exception or an empty answer) the last-known-good set keeps serving and
    :attr:`stale` is set, until ``max_stale`` seconds after the last success; after that
    :meth:`endpoints` raises :class:`EndpointResolutionError`. While failing, resolution is
    retried every ``retry_interval``: the first success clears ``stale`` (recovery) and
    replaces the set, so addresses that disappeared from DNS are dropped then.
    """

    __slots__ = (
        "_clock",
        "_endpoints",
        "_inflight",
        "_max_stale",
        "_refresh",
        "_resolved_at",
        "_retry",
        "_source",
        "_timeout",
        "failures",
        "generation",
        "last_error",
        "next_refresh_at",
        "recoveries",
        "stale",
    )

    def __init__(
        self,
        source: EndpointSource,
        *,
        clock: Clock,
        refresh_interval: float,
        retry_interval: float,
        max_stale: float,
        resolve_timeout: float | None = None,
    ) -> None:
        self._source = source
        self._timeout = resolve_timeout
        self._clock = clock
        self._refresh = refresh_interval
        self._retry = retry_interval
        self._max_stale = max_stale
        self._endpoints: tuple[Endpoint, ...] = ()
        self._resolved_at: float | None = None
        self._inflight: asyncio.Future[None] | None = None
        self.next_refresh_at = float("-inf")
        self.generation = 0
        """Bumped whenever a resolution succeeds (the pool re-syncs its members then)."""
        self.stale = False
        self.failures = 0
        self.recoveries = 0
        self.last_error: str | None = None
        """Type name of the last resolution error (never its message)."""

    @property
    def due(self) -> bool:
        return self._clock.monotonic() >= self.next_refresh_at

    async def endpoints(self) -> Sequence[Endpoint]:
        """The current set, refreshing first when due."""
        if self._clock.monotonic() >= self.next_refresh_at:
            await self.refresh()
        return self._current()

    async def refresh(self) -> None:
        inflight = self._inflight
        if inflight is not None:  # single flight: everyone waits for the one resolution
            await asyncio.shield(inflight)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = future
        try:
            await self._resolve()
        finally:
            self._inflight = None
            future.set_result(None)

    async def _resolve(self) -> None:
        try:
            async with self._clock.timeout(self._timeout):  # a hanging resolver is a failure
                answer = tuple(await self._source.resolve())
            if not answer:
                raise EndpointResolutionError("resolution returned no endpoints")
        except Exception as exc:  # resolution failure: keep the last-known-good set
            now = self._clock.monotonic()
            self.failures += 1
            self.last_error = type(exc).__name__
            self.stale = bool(self._endpoints)
            self.next_refresh_at = now + self._retry
            return
        now = self._clock.monotonic()
        if self.stale:
            self.recoveries += 1
        self.stale = False
        self.last_error = None
        self._endpoints = answer
        self._resolved_at = now
        self.next_refresh_at = now + self._refresh
        self.generation += 1

    def _current(self) -> Sequence[Endpoint]:
        resolved = self._resolved_at
        if resolved is None:
            raise EndpointResolutionError(
                f"endpoint resolution failed ({self.last_error}) and nothing is cached"
            )
        if self.stale and self._clock.monotonic() - resolved > self._max_stale:
            raise EndpointResolutionError(
                f"endpoint resolution failing ({self.last_error}); last-known-good set "
                f"is older than max_stale={self._max_stale}s"
            )
        return self._endpoints
