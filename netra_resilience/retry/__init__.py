"""Retry strategy: backoff with jitter, server hints, deadline awareness, tenacity vocabulary."""

from netra_resilience.backoff import Backoff
from netra_resilience.retry._args import OnRetryArgs, RetryDelayArgs
from netra_resilience.retry._options import RetryOptions
from netra_resilience.retry._strategy import RetryStrategy

__all__ = ["Backoff", "OnRetryArgs", "RetryDelayArgs", "RetryOptions", "RetryStrategy"]
