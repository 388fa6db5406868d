"""Rate limiting: a GCRA token bucket, per-key partitions, and the pipeline strategy."""

from ._args import OnRateLimiterRejected, OnRateLimiterRejectedArgs
from ._options import RateLimiterOptions
from ._partitioned import PartitionedRateLimiter
from ._protocol import RateLimiter
from ._strategy import RateLimiterStrategy
from ._token_bucket import TokenBucketLimiter

__all__ = [
    "OnRateLimiterRejected",
    "OnRateLimiterRejectedArgs",
    "PartitionedRateLimiter",
    "RateLimiter",
    "RateLimiterOptions",
    "RateLimiterStrategy",
    "TokenBucketLimiter",
]
