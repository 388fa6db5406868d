"""Retry strategy: backoff with jitter, server hints, deadline awareness, tenacity vocabulary."""

from ..backoff import Backoff
from ._args import OnRetryArgs, RetryDelayArgs
from ._options import RetryOptions
from ._strategy import RetryStrategy

__all__ = ["Backoff", "OnRetryArgs", "RetryDelayArgs", "RetryOptions", "RetryStrategy"]
