"""The LLM preset's cross-field rules, from MS ``HttpStandardResilienceOptionsCustomValidator``."""

from __future__ import annotations

from netra_resilience._llm_preset_defaults import (
    BREAKER_TIMEOUT_MULTIPLIER as _BREAKER_TIMEOUT_MULTIPLIER,
)
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.retry import RetryOptions, compute_delay
from netra_resilience.validation import Seconds, duration, to_seconds

__all__ = ["optional_seconds", "validate_llm_pipeline"]

_OWNER = "standard_llm_pipeline"


def _retry_budget(retry: RetryOptions) -> float | None:
    """Sum of the computed delays without jitter (MS ``GetAggregatedDelay``), when knowable."""
    if retry.stop is not None or retry.wait is not None or retry.delay_generator is not None:
        return None
    total = 0.0
    state = 0.0
    for attempt in range(retry.max_attempts - 1):
        delay, state = compute_delay(
            retry.backoff,
            attempt,
            to_seconds(retry.delay),
            use_jitter=False,
            random=lambda: 0.5,
            previous_state=state,
            max_delay=to_seconds(retry.max_delay),
        )
        total += delay
    return total


def validate_llm_pipeline(
    *,
    total_timeout: float | None,
    attempt_timeout: float | None,
    retry: RetryOptions | None,
    circuit_breaker: CircuitBreakerOptions | None,
) -> None:
    """The cross-field rules (each raises :class:`InvalidOptionsError` naming the field):

    * the attempt timeout must not exceed the total timeout;
    * a time-window breaker must sample at least twice the attempt timeout, or one slow
      attempt outlives the window that should count it;
    * the retry's cumulative computed delay must fit in the total timeout.
    """
    if (
        total_timeout is not None
        and attempt_timeout is not None
        and attempt_timeout > total_timeout
    ):
        raise InvalidOptionsError(
            _OWNER,
            "attempt_timeout",
            f"must be <= total_timeout ({total_timeout} s), got {attempt_timeout} s",
        )
    if circuit_breaker is not None and attempt_timeout is not None:
        sampling = to_seconds(circuit_breaker.sampling_duration)
        needed = attempt_timeout * _BREAKER_TIMEOUT_MULTIPLIER
        if circuit_breaker.window == "time" and sampling < needed:
            raise InvalidOptionsError(
                _OWNER,
                "circuit_breaker.sampling_duration",
                f"must be >= 2 x attempt_timeout ({needed} s), got {sampling} s",
            )
    if retry is not None and total_timeout is not None:
        budget = _retry_budget(retry)
        if budget is not None and budget > total_timeout:
            raise InvalidOptionsError(
                _OWNER,
                "retry",
                f"cumulative retry delay ({budget} s) must fit in total_timeout "
                f"({total_timeout} s)",
            )


def optional_seconds(field: str, value: Seconds | None) -> float | None:
    return None if value is None else duration(_OWNER, field, value)
