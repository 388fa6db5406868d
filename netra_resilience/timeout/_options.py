"""``TimeoutOptions``: how long one execution may take before it is cancelled."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netra_resilience._types import Seconds, to_seconds
from netra_resilience._validation import callable_or_none, optional_duration, set_field
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import InvalidOptionsError

if TYPE_CHECKING:
    from netra_resilience.strategy import BuildContext
    from netra_resilience.timeout._strategy import TimeoutStrategy

_OWNER = "TimeoutOptions"


def per_call_timeout(value: Seconds | None) -> float | None:
    """A generator's answer: ``None``, zero, negative, NaN or infinite disables the timeout."""
    if value is None:
        return None
    seconds = to_seconds(value)
    return seconds if 0 < seconds < math.inf else None


@dataclass(frozen=True, slots=True)
class OnTimeoutArgs:
    """What ``on_timeout`` receives when this strategy's own deadline expired."""

    context: ResilienceContext
    timeout: float


TimeoutGenerator = Callable[[ResilienceContext], "Seconds | None"]
OnTimeout = Callable[[OnTimeoutArgs], "Awaitable[Any] | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutOptions:
    """Cancel the rest of the pipeline when it runs longer than ``timeout`` seconds.

    * ``timeout``: seconds (or ``timedelta``), ``> 0``; ``None`` disables the timeout.
    * ``timeout_generator(context)``: a per-call timeout that replaces ``timeout``; ``None``,
      zero or a negative value disables it for that call (as Polly's ``TimeoutGenerator``).
    * ``on_timeout(OnTimeoutArgs)``: sync or async hook, called on our own expiry only.

    Only this strategy's own expiry becomes :class:`TimeoutRejectedError` (and marks the
    degradation ``timeout``); a caller's cancel stays ``CancelledError``. A total timeout
    placed outside a retry whose attempts have their own timeout is *fused* with it: one timer
    per attempt enforces both (see ``netra_resilience.timeout._fusion``).
    """

    timeout: Seconds | None = 30.0
    timeout_generator: TimeoutGenerator | None = None
    on_timeout: OnTimeout | None = None

    def __post_init__(self) -> None:
        seconds = optional_duration(_OWNER, "timeout", self.timeout)
        if seconds is not None and math.isinf(seconds):
            raise InvalidOptionsError(_OWNER, "timeout", "must be finite (None disables it)")
        set_field(self, "timeout", seconds)
        callable_or_none(_OWNER, "timeout_generator", self.timeout_generator)
        callable_or_none(_OWNER, "on_timeout", self.on_timeout)

    def create_strategy(self, build: BuildContext) -> TimeoutStrategy:
        from netra_resilience.timeout._strategy import TimeoutStrategy

        return TimeoutStrategy(self, build)
