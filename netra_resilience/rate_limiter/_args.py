"""What the rate limiter's ``on_rejected`` callback receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import RateLimitRejectedError


@dataclass(frozen=True, slots=True)
class OnRateLimiterRejectedArgs:
    """What ``on_rejected`` receives: the call's context, the rejection and its cost."""

    context: ResilienceContext
    error: RateLimitRejectedError
    permits: int


OnRateLimiterRejected = Callable[[OnRateLimiterRejectedArgs], Awaitable[None] | None]
