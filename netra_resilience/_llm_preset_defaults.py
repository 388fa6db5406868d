"""The LLM preset's default retry and circuit breaker (overridable one by one)."""

from __future__ import annotations

from typing import Any

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitStateStore
from netra_resilience.clock import Clock
from netra_resilience.llm import LLM_BREAKER_FAILURE, TRANSIENT_LLM_FAILURE, llm_retry_after
from netra_resilience.retry import Backoff, RetryOptions

__all__ = ["BREAKER_TIMEOUT_MULTIPLIER", "default_llm_breaker", "standard_llm_retry"]

BREAKER_TIMEOUT_MULTIPLIER = 2
"""A time-window breaker samples at least this many attempt timeouts."""


def standard_llm_retry(clock: Clock | None = None, **overrides: Any) -> RetryOptions:
    """The preset's retry: 3 attempts, exponential backoff from 1 s with jitter (computed
    delays capped at 10 s), transient LLM failures only, server ``Retry-After`` honoured up
    to 60 s (above that it gives up rather than hold a request for minutes)."""
    settings: dict[str, Any] = {
        "max_attempts": 3,
        "backoff": Backoff.EXPONENTIAL,
        "delay": 1.0,
        "max_delay": 10.0,
        "use_jitter": True,
        "should_handle": TRANSIENT_LLM_FAILURE,
        "retry_after": llm_retry_after(clock),
        "max_server_delay": 60.0,
    }
    settings.update(overrides)
    return RetryOptions(**settings)


def default_llm_breaker(
    clock: Clock | None, attempt_timeout: float | None, store: CircuitStateStore | None
) -> CircuitBreakerOptions:
    """Opens at a 50 % failure ratio over >= 10 calls in max(120 s, 2 x attempt timeout),
    for 30 s (or the provider's ``Retry-After``)."""
    return CircuitBreakerOptions(
        failure_ratio=0.5,
        minimum_throughput=10,
        sampling_duration=max(120.0, BREAKER_TIMEOUT_MULTIPLIER * (attempt_timeout or 0.0)),
        break_duration=30.0,
        should_handle=LLM_BREAKER_FAILURE,
        retry_after=llm_retry_after(clock),
        store=store,
    )
