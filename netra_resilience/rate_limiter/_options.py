"""``RateLimiterOptions``: which limiter, how many permits a call costs, how long to wait."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netra_resilience._types import Seconds
from netra_resilience._validation import callable_or_none, integer, optional_duration, set_field
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.rate_limiter._args import OnRateLimiterRejected
from netra_resilience.rate_limiter._partitioned import PartitionedRateLimiter
from netra_resilience.rate_limiter._protocol import RateLimiter
from netra_resilience.rate_limiter._strategy import RateLimiterStrategy
from netra_resilience.strategy import BuildContext

_OWNER = "RateLimiterOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimiterOptions:
    """Options of the rate-limiter strategy. Give exactly one of ``limiter`` / ``partitioned``.

    * ``limiter``: one limiter shared by every call of the pipeline (e.g. a provider's RPM).
    * ``partitioned`` + ``partition_key``: one limiter per key; the key defaults to the
      caller scope (``context.scope``: tenant/user), e.g. ``lambda ctx: ctx.user_id or ""``.
    * ``permits``: what a call costs, a constant or a function of the context (token-weighted
      TPM limits); must stay within the limiter's ``burst``.
    * ``max_wait``: how long a call may queue (``None``: the limiter's own default).
    * ``pause_hint``: after a call, an upstream ``Retry-After`` read from its outcome pauses
      the limiter for every caller (``None`` turns that off).
    """

    limiter: RateLimiter | None = None
    partitioned: PartitionedRateLimiter | None = None
    partition_key: Callable[[ResilienceContext], str] | None = None
    permits: int | Callable[[ResilienceContext], int] = 1
    max_wait: Seconds | None = None
    pause_hint: RetryAfterHint | None = retry_after_of
    on_rejected: OnRateLimiterRejected | None = None

    def __post_init__(self) -> None:
        if (self.limiter is None) == (self.partitioned is None):
            raise InvalidOptionsError(
                _OWNER, "limiter", "needs exactly one of limiter= or partitioned="
            )
        if self.limiter is not None and not isinstance(self.limiter, RateLimiter):
            raise InvalidOptionsError(
                _OWNER, "limiter", f"must implement RateLimiter, got {type(self.limiter).__name__}"
            )
        if self.partitioned is not None and not isinstance(
            self.partitioned, PartitionedRateLimiter
        ):
            raise InvalidOptionsError(_OWNER, "partitioned", "must be a PartitionedRateLimiter")
        if self.partition_key is not None and self.partitioned is None:
            raise InvalidOptionsError(_OWNER, "partition_key", "needs partitioned=")
        callable_or_none(_OWNER, "partition_key", self.partition_key)
        callable_or_none(_OWNER, "pause_hint", self.pause_hint)
        callable_or_none(_OWNER, "on_rejected", self.on_rejected)
        if not callable(self.permits):
            integer(_OWNER, "permits", self.permits, minimum=1)
            if self.limiter is not None and self.permits > self.limiter.burst:
                raise InvalidOptionsError(
                    _OWNER,
                    "permits",
                    f"must be <= the limiter's burst ({self.limiter.burst}), got {self.permits}",
                )
        set_field(
            self, "max_wait", optional_duration(_OWNER, "max_wait", self.max_wait, allow_zero=True)
        )

    def create_strategy(self, build: BuildContext) -> RateLimiterStrategy:
        return RateLimiterStrategy(self, build)
