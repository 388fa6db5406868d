"""``BulkheadOptions``: a seat count (or a shared limiter), queue size and queue timeout."""

from __future__ import annotations

from dataclasses import dataclass

from netra_resilience._types import Seconds
from netra_resilience._validation import callable_or_none, integer, optional_duration, set_field
from netra_resilience.bulkhead._concurrency import ConcurrencyLimiter
from netra_resilience.bulkhead._strategy import BulkheadStrategy, OnBulkheadRejected
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.strategy import BuildContext

_OWNER = "BulkheadOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadOptions:
    """Options of the bulkhead strategy: give ``max_concurrency`` or ``limiter``, not both.

    With ``max_concurrency`` each built pipeline gets its own :class:`ConcurrencyLimiter` on
    the pipeline's clock (``max_queue`` places, ``queue_timeout`` seconds of waiting, ``None``
    = wait as long as it takes). Pass ``limiter`` instead to share one set of seats between
    pipelines; its queue settings then live on the limiter.
    """

    max_concurrency: int | None = None
    limiter: ConcurrencyLimiter | None = None
    max_queue: int = 0
    queue_timeout: Seconds | None = None
    on_rejected: OnBulkheadRejected | None = None

    def __post_init__(self) -> None:
        if (self.max_concurrency is None) == (self.limiter is None):
            raise InvalidOptionsError(
                _OWNER, "max_concurrency", "needs exactly one of max_concurrency= or limiter="
            )
        if self.limiter is not None:
            if not isinstance(self.limiter, ConcurrencyLimiter):
                raise InvalidOptionsError(_OWNER, "limiter", "must be a ConcurrencyLimiter")
            if self.max_queue != 0:
                raise InvalidOptionsError(_OWNER, "max_queue", "is set on the limiter itself")
            if self.queue_timeout is not None:
                raise InvalidOptionsError(_OWNER, "queue_timeout", "is set on the limiter itself")
        else:
            assert self.max_concurrency is not None
            integer(_OWNER, "max_concurrency", self.max_concurrency, minimum=1)
        integer(_OWNER, "max_queue", self.max_queue, minimum=0)
        set_field(
            self, "queue_timeout", optional_duration(_OWNER, "queue_timeout", self.queue_timeout)
        )
        callable_or_none(_OWNER, "on_rejected", self.on_rejected)

    def create_strategy(self, build: BuildContext) -> BulkheadStrategy:
        limiter = self.limiter
        if limiter is None:
            assert self.max_concurrency is not None
            limiter = ConcurrencyLimiter(
                max_concurrency=self.max_concurrency,
                max_queue=self.max_queue,
                queue_timeout=self.queue_timeout,
                clock=build.clock,
            )
        return BulkheadStrategy(limiter, build, self.on_rejected)
