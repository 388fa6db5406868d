"""``CacheStrategy``: fresh hits skip the call; failures can be answered from a stale entry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from netra_resilience._types import to_seconds
from netra_resilience.cache._backend import CacheEntry
from netra_resilience.cache._keys import call_arguments, stable_key
from netra_resilience.cache._safe import SafeBackend, run_hook
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity

if TYPE_CHECKING:
    from netra_resilience.cache._options import CacheOptions

_STALE = DegradationReason.STALE_CACHE


class CacheStrategy(Strategy):
    """Read-through cache with stale-if-error. The cache never causes a request to fail.

    A fresh hit is not degradation (no mark, event ``cache_hit``); a stale answer served on
    failure marks the dependency ``stale_cache``. Place it outside the breaker so an open
    circuit (``BrokenCircuitError``) is answered from the cache.
    """

    __slots__ = (
        "_backend",
        "_clock",
        "_key",
        "_name",
        "_namespace",
        "_on_hit",
        "_on_stale",
        "_scoped",
        "_serve_fresh",
        "_should_cache",
        "_stale_on",
        "_stale_ttl",
        "_telemetry",
        "_ttl",
    )

    kind: ClassVar[str] = "cache"

    def __init__(self, options: CacheOptions, build: BuildContext) -> None:
        self._key = options.key
        self._ttl = to_seconds(options.ttl)
        self._stale_ttl = to_seconds(options.stale_ttl)
        self._serve_fresh = options.serve_fresh
        self._should_cache = options.should_cache
        self._stale_on = options.stale_on
        self._scoped = options.include_scope
        self._namespace = options.namespace or build.name
        self._on_hit = options.on_hit
        self._on_stale = options.on_stale
        self._name = build.name
        self._clock = build.clock
        self._telemetry = build.telemetry(self.kind)
        timeout = options.backend_timeout
        self._backend = SafeBackend(
            options.backend,
            build.clock,
            None if timeout is None else to_seconds(timeout),
            self._telemetry,
        )

    def key_for(
        self, context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        """The backend key for this call (namespaced, hashed, scoped), or ``None`` to bypass."""
        raw = self._key(context, args, kwargs)
        if raw is None:
            return None
        scope = context.scope if self._scoped else None
        return f"{self._namespace}:{stable_key(raw, scope)}"

    async def lookup_stale(
        self, context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CacheEntry | None:
        """The entry for this call if still usable (fresh or stale), else ``None``.

        For a fallback action elsewhere. It does not mark degradation: whoever serves the
        entry marks ``stale_cache`` (or passes ``reason="stale_cache"`` to the fallback).
        """
        key = self._safe_key(context, args, kwargs)
        if key is None:
            return None
        entry = await self._backend.get(key, context.operation_key)
        return entry if entry is not None and entry.is_usable(self._now()) else None

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        args, kwargs = call_arguments(state)
        key = self._safe_key(context, args, kwargs)
        if key is None:
            return await callback(context, state)
        entry: CacheEntry | None = None
        if self._serve_fresh:
            entry = await self._backend.get(key, context.operation_key)
            if entry is not None and entry.is_fresh(self._now()):
                self._emit("cache_hit", context)
                await run_hook(self._on_hit, context, key, entry)
                return Outcome(entry.value)
            self._emit("cache_miss", context)
        outcome = await callback(context, state)
        if self._stale_on(outcome):
            return await self._serve_stale(outcome, context, key, entry)
        if outcome.exception is None and self._cacheable(outcome.result, context):
            now = self._now()
            keep = self._ttl + self._stale_ttl
            stored = CacheEntry(outcome.result, now, now + self._ttl, now + keep)
            await self._backend.set(key, stored, keep, context.operation_key)
        return outcome

    async def _serve_stale(
        self,
        outcome: Outcome[Any],
        context: ResilienceContext,
        key: str,
        entry: CacheEntry | None,
    ) -> Outcome[Any]:
        now = self._now()
        if entry is None or not entry.is_usable(now):
            # Look (again): another request may have stored an answer while this one ran.
            entry = await self._backend.get(key, context.operation_key)
            if entry is None or not entry.is_usable(now):
                return outcome
        context.degradation.mark(self._name, _STALE)
        if self._telemetry.enabled:
            exc = outcome.exception
            self._telemetry.emit(
                "cache_stale",
                Severity.WARNING,
                context.operation_key,
                reason=_STALE.value,
                error_type=type(exc).__name__ if exc is not None else None,
                age=now - entry.stored_at,
            )
        await run_hook(self._on_stale, context, key, entry)
        return Outcome(entry.value)

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _safe_key(
        self, context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        try:
            return self.key_for(context, args, kwargs)
        except Exception as exc:  # a broken key function bypasses the cache, loudly
            self._backend.error("key", exc, context.operation_key)
            return None

    def _cacheable(self, result: Any, context: ResilienceContext) -> bool:
        try:
            return bool(self._should_cache(result))
        except Exception as exc:
            self._backend.error("should_cache", exc, context.operation_key)
            return False

    def _emit(self, name: str, context: ResilienceContext) -> None:
        if self._telemetry.enabled:
            self._telemetry.emit(name, Severity.DEBUG, context.operation_key)
