"""Bulkhead: bounded concurrency with a bounded FIFO queue, and its pipeline strategy."""

from ._concurrency import ConcurrencyLimiter
from ._options import BulkheadOptions
from ._strategy import BulkheadStrategy, OnBulkheadRejected, OnBulkheadRejectedArgs

__all__ = [
    "BulkheadOptions",
    "BulkheadStrategy",
    "ConcurrencyLimiter",
    "OnBulkheadRejected",
    "OnBulkheadRejectedArgs",
]
