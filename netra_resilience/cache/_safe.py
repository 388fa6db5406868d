"""Backend access where every error and every slow operation becomes a miss, never a failure."""

from __future__ import annotations

import inspect
from typing import Any

from netra_resilience.cache._backend import CacheBackend, CacheEntry
from netra_resilience.cache._options import CacheEventArgs, CacheHook
from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.telemetry import Severity, Telemetry


class SafeBackend:
    """Wraps a :class:`CacheBackend` with the backend timeout and error reporting.

    Any ``Exception`` (connection refused, a deserialisation error, the timeout's own
    ``TimeoutError``) is reported as a ``cache_error`` event and swallowed; a caller's
    ``CancelledError`` still propagates.
    """

    __slots__ = ("_backend", "_clock", "_telemetry", "_timeout")

    def __init__(
        self, backend: CacheBackend, clock: Clock, timeout: float | None, telemetry: Telemetry
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._timeout = timeout
        self._telemetry = telemetry

    async def get(self, key: str, operation_key: str) -> CacheEntry | None:
        try:
            if self._timeout is None:
                entry = await self._backend.get(key)
            else:
                async with self._clock.timeout(self._timeout):
                    entry = await self._backend.get(key)
        except Exception as exc:
            self.error("get", exc, operation_key)
            return None
        # A backend returning something else (a raw value, a bad deserialisation) is a miss.
        return entry if isinstance(entry, CacheEntry) else None

    async def set(self, key: str, entry: CacheEntry, ttl: float, operation_key: str) -> None:
        try:
            if self._timeout is None:
                await self._backend.set(key, entry, ttl)
            else:
                async with self._clock.timeout(self._timeout):
                    await self._backend.set(key, entry, ttl)
        except Exception as exc:
            self.error("set", exc, operation_key)

    def error(self, stage: str, exc: BaseException, operation_key: str, **args: Any) -> None:
        if self._telemetry.enabled:
            self._telemetry.emit(
                "cache_error",
                Severity.WARNING,
                operation_key,
                reason=stage,
                error_type=type(exc).__name__,
                **args,
            )


async def run_hook(
    hook: CacheHook | None, context: ResilienceContext, key: str, entry: CacheEntry
) -> None:
    if hook is None:
        return
    try:
        value = hook(CacheEventArgs(context, key, entry))
        if inspect.isawaitable(value):
            await value
    except Exception:  # an observer must never change the answer
        return
