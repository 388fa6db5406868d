"""Bulkhead: bounded concurrency with a bounded FIFO queue, and its pipeline strategy."""

from netra_resilience.bulkhead._concurrency import ConcurrencyLimiter
from netra_resilience.bulkhead._options import BulkheadOptions
from netra_resilience.bulkhead._strategy import (
    BulkheadStrategy,
    OnBulkheadRejected,
    OnBulkheadRejectedArgs,
)

__all__ = [
    "BulkheadOptions",
    "BulkheadStrategy",
    "ConcurrencyLimiter",
    "OnBulkheadRejected",
    "OnBulkheadRejectedArgs",
]
