"""``CacheOptions``: what to cache, under which key, for how long, and when to serve it stale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netra_resilience._types import Seconds
from netra_resilience._validation import callable_or_none, duration, optional_duration, set_field
from netra_resilience.cache._backend import CacheBackend, CacheEntry
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION

if TYPE_CHECKING:
    from netra_resilience.cache._strategy import CacheStrategy
    from netra_resilience.strategy import BuildContext

_OWNER = "CacheOptions"

CacheKey = Callable[[ResilienceContext, tuple[Any, ...], dict[str, Any]], str | None]
"""``key(context, args, kwargs) -> str | None``; ``None`` bypasses the cache for that call."""


@dataclass(frozen=True, slots=True)
class CacheEventArgs:
    """Passed to ``on_hit`` / ``on_stale``: the context, the (hashed) key and the entry."""

    context: ResilienceContext
    key: str
    entry: CacheEntry


CacheHook = Callable[[CacheEventArgs], Awaitable[None] | None]


def _always(result: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """A response cache that never fails a request and can answer stale when the call fails.

    * ``key`` must cover everything that changes the output (model, messages, tools,
      temperature, ...). The stored key is a hash of ``namespace`` (default: pipeline name),
      that key and, unless ``include_scope=False``, the caller's scope (tenant/user): sharing
      answers across users is an explicit opt-in.
    * ``ttl``: fresh lifetime (``0`` = never serve fresh, keep only for stale-on-error);
      ``stale_ttl``: extra lifetime during which a failure matched by ``stale_on`` (by default
      any exception, rejections such as an open breaker included) is answered from the entry,
      marking the dependency ``stale_cache``.
    * ``should_cache(result)`` keeps refusals and error texts out of the cache.
    * ``backend_timeout``: a slower backend operation counts as a miss (or a skipped store),
      never as a stall. Backend errors of any kind are misses too.
    """

    backend: CacheBackend
    key: CacheKey
    ttl: Seconds
    stale_ttl: Seconds = 0.0
    serve_fresh: bool = True
    should_cache: Callable[[Any], bool] = _always
    stale_on: Callable[[Outcome[Any]], bool] = ANY_EXCEPTION
    include_scope: bool = True
    namespace: str | None = None
    backend_timeout: Seconds | None = 0.25
    on_hit: CacheHook | None = None
    on_stale: CacheHook | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.backend, CacheBackend):
            raise InvalidOptionsError(
                _OWNER, "backend", "must implement async get(), set() and delete()"
            )
        for name in ("key", "should_cache", "stale_on"):
            if not callable(getattr(self, name)):
                raise InvalidOptionsError(_OWNER, name, "must be callable")
        ttl = duration(_OWNER, "ttl", self.ttl, allow_zero=True)
        stale_ttl = duration(_OWNER, "stale_ttl", self.stale_ttl, allow_zero=True)
        if ttl == 0 and stale_ttl == 0:
            raise InvalidOptionsError(_OWNER, "stale_ttl", "must be > 0 when ttl is 0")
        set_field(self, "ttl", ttl)
        set_field(self, "stale_ttl", stale_ttl)
        set_field(
            self,
            "backend_timeout",
            optional_duration(_OWNER, "backend_timeout", self.backend_timeout),
        )
        for flag in ("serve_fresh", "include_scope"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidOptionsError(_OWNER, flag, "must be a bool")
        if self.namespace is not None and (
            not isinstance(self.namespace, str) or not self.namespace
        ):
            raise InvalidOptionsError(_OWNER, "namespace", "must be a non-empty string or None")
        callable_or_none(_OWNER, "on_hit", self.on_hit)
        callable_or_none(_OWNER, "on_stale", self.on_stale)

    def create_strategy(self, build: BuildContext) -> CacheStrategy:
        from netra_resilience.cache._strategy import CacheStrategy

        return CacheStrategy(self, build)
