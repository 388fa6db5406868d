"""``standard_llm_pipeline``: the LLM pipeline we recommend, with defaults and cross-checks.

Outermost first: cache (stale answer when everything below fails) -> fallback chain ->
rate limiter -> bulkhead -> total timeout -> retry -> circuit breaker -> attempt timeout.
It is Microsoft's standard HTTP resilience pipeline (``AddStandardResilienceHandler``) with
LLM-sized timeouts, LLM failure classification, and the cache/fallback layers on top; its
cross-field rules come from ``HttpStandardResilienceOptionsCustomValidator``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from netra_resilience._llm_preset_defaults import default_llm_breaker, standard_llm_retry
from netra_resilience._llm_preset_rules import optional_seconds, validate_llm_pipeline
from netra_resilience.bulkhead import BulkheadOptions
from netra_resilience.cache import CacheBackend, CacheKey, CacheOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitStateStore
from netra_resilience.clock import Clock
from netra_resilience.fallback import FallbackOptions
from netra_resilience.hints import retry_after_of
from netra_resilience.llm import (
    LLM_DEPENDENCY_FAILURE,
    Alternate,
    CannedReply,
    DegradedAnswers,
    FallbackChain,
    answer_cache_filter,
    llm_cache_key,
    llm_retry_after,
)
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.rate_limiter import RateLimiterOptions
from netra_resilience.retry import RetryOptions
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions
from netra_resilience.validation import Seconds, to_seconds

__all__ = ["standard_llm_pipeline", "standard_llm_retry", "validate_llm_pipeline"]


def standard_llm_pipeline(
    name: str = "llm",
    *,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
    telemetry: TelemetryListener | None = None,
    instance: str = "",
    total_timeout: Seconds | None = 150.0,
    attempt_timeout: Seconds | None = 60.0,
    retry: RetryOptions | None = None,
    circuit_breaker: CircuitBreakerOptions | None = None,
    breaker_store: CircuitStateStore | None = None,
    rate_limiter: RateLimiterOptions | None = None,
    bulkhead: BulkheadOptions | None = None,
    cache: CacheBackend | None = None,
    cache_ttl: Seconds = 0.0,
    stale_ttl: Seconds = 86_400.0,
    cache_key: CacheKey = llm_cache_key,
    share_cache_across_users: bool = False,
    alternates: Sequence[Alternate] = (),
    canned_reply: CannedReply | None = None,
    fallback_on: Callable[[Outcome[Any]], bool] = LLM_DEPENDENCY_FAILURE,
) -> Pipeline:
    """Build the recommended LLM pipeline (see the module docstring for the order).

    * Timeouts: ``attempt_timeout`` per attempt (60 s), ``total_timeout`` across retries
      (150 s); ``None`` disables one.
    * ``retry``: default :func:`standard_llm_retry`; ``circuit_breaker``: default opens at a
      50 % failure ratio over >= 10 calls in max(120 s, 2 x attempt timeout), for 30 s (or
      the provider's ``Retry-After``), counting transient failures and truncated streams;
      ``breaker_store`` puts that default breaker's state in a shared store (e.g. Redis).
    * ``rate_limiter`` / ``bulkhead``: added only when given; a rate limiter with the stock
      ``pause_hint`` gets the LLM one, so a provider's 429 ``Retry-After`` pauses it.
    * ``cache``: a :class:`CacheBackend` (e.g. ``AiocacheBackend()``). By default it only
      answers *stale*, when the LLM fails (``stale_ttl``); ``cache_ttl > 0`` also serves fresh
      hits. Answers are keyed per caller scope unless ``share_cache_across_users``; refusals,
      streams and fallback answers are never stored.
    * ``alternates``: a fallback chain (other model/deployment/provider, each with its own
      breaker); ``canned_reply``: the last resort, tried after the stale cache.
    """
    total = optional_seconds("total_timeout", total_timeout)
    attempt = optional_seconds("attempt_timeout", attempt_timeout)
    retry_options = retry if retry is not None else standard_llm_retry(clock)
    breaker = circuit_breaker or default_llm_breaker(clock, attempt, breaker_store)
    validate_llm_pipeline(
        total_timeout=total,
        attempt_timeout=attempt,
        retry=retry_options,
        circuit_breaker=breaker,
    )
    degraded = DegradedAnswers()
    builder = PipelineBuilder(
        name, instance=instance, clock=clock, random=random, telemetry=telemetry
    )
    if canned_reply is not None and cache is not None:
        # Last resort comes after the stale answer, so it wraps the cache.
        canned = FallbackChain((), canned_reply=canned_reply, dependency=name, degraded=degraded)
        builder.add_fallback(FallbackOptions(action=canned, should_handle=fallback_on))
    if cache is not None:
        builder.add_cache(
            CacheOptions(
                backend=cache,
                key=cache_key,
                ttl=cache_ttl,
                stale_ttl=stale_ttl,
                serve_fresh=to_seconds(cache_ttl) > 0,
                should_cache=answer_cache_filter(degraded),
                stale_on=LLM_DEPENDENCY_FAILURE,
                include_scope=not share_cache_across_users,
            )
        )
    inner_canned = canned_reply if cache is None else None
    if alternates or inner_canned is not None:
        chain = FallbackChain(
            alternates, canned_reply=inner_canned, dependency=name, degraded=degraded
        )
        builder.add_fallback(FallbackOptions(action=chain, should_handle=fallback_on))
    if rate_limiter is not None:
        if rate_limiter.pause_hint is retry_after_of:
            # The stock hint reads only a ``retry_after`` attribute; the LLM hint also reads
            # an SDK error's ``Retry-After`` headers, so a 429 pauses the limiter for everyone.
            rate_limiter = dataclasses.replace(rate_limiter, pause_hint=llm_retry_after(clock))
        builder.add_rate_limiter(rate_limiter)
    if bulkhead is not None:
        builder.add_bulkhead(bulkhead)
    if total is not None:
        builder.add_timeout(TimeoutOptions(timeout=total))
    builder.add_retry(retry_options)
    builder.add_circuit_breaker(breaker)
    if attempt is not None:
        builder.add_timeout(TimeoutOptions(timeout=attempt))
    return builder.build()
