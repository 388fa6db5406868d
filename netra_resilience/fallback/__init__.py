"""Fallback: answer with something else (a canned reply, a stale cache entry) on failure."""

from netra_resilience.fallback._options import (
    FallbackAction,
    FallbackArgs,
    FallbackOptions,
    OnFallback,
)
from netra_resilience.fallback._strategy import FallbackStrategy

__all__ = [
    "FallbackAction",
    "FallbackArgs",
    "FallbackOptions",
    "FallbackStrategy",
    "OnFallback",
]
