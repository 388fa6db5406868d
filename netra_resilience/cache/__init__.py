"""Response cache with stale-if-error: a cache error is a miss, never a failed request."""

from ._backend import CacheBackend, CacheEntry, InMemoryTTLCache
from ._keys import stable_key
from ._options import CacheEventArgs, CacheHook, CacheKey, CacheOptions
from ._strategy import CacheStrategy

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
