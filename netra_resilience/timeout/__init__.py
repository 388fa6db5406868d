"""Timeout strategy: own expiry becomes ``TimeoutRejectedError``; a caller's cancel stays one."""

from ._options import OnTimeoutArgs, TimeoutOptions
from ._strategy import TimeoutStrategy

__all__ = ["OnTimeoutArgs", "TimeoutOptions", "TimeoutStrategy"]
