"""Response cache with stale-if-error: a cache error is a miss, never a failed request."""

from netra_resilience.cache._backend import CacheBackend, CacheEntry, InMemoryTTLCache
from netra_resilience.cache._keys import stable_key
from netra_resilience.cache._options import CacheEventArgs, CacheHook, CacheKey, CacheOptions
from netra_resilience.cache._strategy import CacheStrategy

__all__ = [
    "CacheBackend",
    "CacheEntry",
    "CacheEventArgs",
    "CacheHook",
    "CacheKey",
    "CacheOptions",
    "CacheStrategy",
    "InMemoryTTLCache",
    "stable_key",
]
