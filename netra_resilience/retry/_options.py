"""``RetryOptions``: how many attempts, how long to wait between them, and what to retry."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from netra_resilience._types import Seconds
from netra_resilience._validation import callable_or_none, duration, integer, set_field
from netra_resilience.backoff import Backoff
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import TRANSIENT_EXCEPTION
from netra_resilience.retry._args import OnRetryArgs, RetryDelayArgs

if TYPE_CHECKING:
    from netra_resilience.retry._strategy import RetryStrategy
    from netra_resilience.strategy import BuildContext

_OWNER = "RetryOptions"
_DEFAULT_MAX_ATTEMPTS = 3

DelayValue = float | timedelta | None
DelayGenerator = Callable[[RetryDelayArgs], "DelayValue | Awaitable[DelayValue]"]
OnRetry = Callable[[OnRetryArgs], "Awaitable[Any] | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOptions:
    """Retry handled outcomes with backoff.

    * ``max_attempts``: total attempts *including the first* (stamina/resilience4j; Polly
      counts retries only). ``1`` disables retrying.
    * ``backoff``, ``delay``, ``use_jitter``: the computed delay (see
      :mod:`netra_resilience.backoff`); ``max_delay`` clamps computed delays only.
    * ``should_handle``: which outcomes to retry (default: exceptions except rejections, but
      timeouts). Whatever it says, ``CancelledError`` (any non-``Exception``) and rejections
      other than :class:`TimeoutRejectedError` (an open breaker, a full bulkhead, a rate limit)
      are **never** retried: retrying them only spins against the component that said no.
    * ``retry_after``: reads a server hint from the outcome; when present it replaces the
      computed delay. ``None`` ignores hints.
    * ``delay_generator(RetryDelayArgs)``: sync or async; a number (or ``timedelta``) replaces
      the delay, ``None`` or a negative value falls back (to the hint, else the computed delay).
    * ``max_server_delay``: a hinted or generated delay above it means *give up*: the last
      outcome is returned without further attempts (openai's 120 s rule).
    * ``stop`` / ``wait``: tenacity ``stop_*`` / ``wait_*`` objects as an alternative
      vocabulary. ``stop`` replaces ``max_attempts`` (so give one or the other); ``wait``
      replaces ``backoff``/``delay``/``max_delay``/``use_jitter``. Hints still win over it.
    * ``on_retry(OnRetryArgs)``: sync or async, called before each sleep.

    A callback that raises (predicate, hint, generator, stop, wait, on_retry) ends the call
    with that exception, as in Polly.
    """

    max_attempts: int = _DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = Backoff.EXPONENTIAL
    delay: Seconds = 1.0
    max_delay: Seconds = 30.0
    use_jitter: bool = True
    should_handle: Callable[[Outcome[Any]], bool] = TRANSIENT_EXCEPTION
    delay_generator: DelayGenerator | None = None
    retry_after: RetryAfterHint | None = retry_after_of
    max_server_delay: Seconds = 120.0
    stop: Callable[[Any], bool] | None = None
    wait: Callable[[Any], float] | None = None
    on_retry: OnRetry | None = None

    def __post_init__(self) -> None:
        integer(_OWNER, "max_attempts", self.max_attempts)
        if self.stop is not None and self.max_attempts != _DEFAULT_MAX_ATTEMPTS:
            raise InvalidOptionsError(
                _OWNER, "stop", "replaces max_attempts: give one of them, not both"
            )
        try:
            set_field(self, "backoff", Backoff(self.backoff))
        except ValueError:
            allowed = ", ".join(b.value for b in Backoff)
            raise InvalidOptionsError(
                _OWNER, "backoff", f"must be one of {allowed}, got {self.backoff!r}"
            ) from None
        delay = duration(_OWNER, "delay", self.delay, allow_zero=True)
        if math.isinf(delay):
            raise InvalidOptionsError(_OWNER, "delay", "must be finite")
        set_field(self, "delay", delay)
        set_field(self, "max_delay", duration(_OWNER, "max_delay", self.max_delay))
        set_field(
            self, "max_server_delay", duration(_OWNER, "max_server_delay", self.max_server_delay)
        )
        if not isinstance(self.use_jitter, bool):
            raise InvalidOptionsError(
                _OWNER, "use_jitter", f"must be a bool, got {self.use_jitter!r}"
            )
        if not callable(self.should_handle):
            raise InvalidOptionsError(_OWNER, "should_handle", "must be callable")
        for name in ("delay_generator", "retry_after", "stop", "wait", "on_retry"):
            callable_or_none(_OWNER, name, getattr(self, name))

    def create_strategy(self, build: BuildContext) -> RetryStrategy:
        from netra_resilience.retry._strategy import RetryStrategy

        return RetryStrategy(self, build)
