"""Timeout strategy: own expiry becomes ``TimeoutRejectedError``; a caller's cancel stays one."""

from netra_resilience.timeout._options import OnTimeoutArgs, TimeoutOptions
from netra_resilience.timeout._strategy import TimeoutStrategy

__all__ = ["OnTimeoutArgs", "TimeoutOptions", "TimeoutStrategy"]
