"""Rate limiting: a GCRA token bucket, per-key partitions, and the pipeline strategy."""

from netra_resilience.rate_limiter._args import OnRateLimiterRejected, OnRateLimiterRejectedArgs
from netra_resilience.rate_limiter._options import RateLimiterOptions
from netra_resilience.rate_limiter._partitioned import PartitionedRateLimiter
from netra_resilience.rate_limiter._protocol import RateLimiter
from netra_resilience.rate_limiter._strategy import RateLimiterStrategy
from netra_resilience.rate_limiter._token_bucket import TokenBucketLimiter

__all__ = [
    "OnRateLimiterRejected",
    "OnRateLimiterRejectedArgs",
    "PartitionedRateLimiter",
    "RateLimiter",
    "RateLimiterOptions",
    "RateLimiterStrategy",
    "TokenBucketLimiter",
]
