"""``standard_llm_pipeline``: the LLM preset with its defaults and cross-field rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from netra_resilience.admission import AdmissionOptions, RetryBudget, VegasLimit
from netra_resilience.bulkhead import BulkheadOptions
from netra_resilience.cache import CacheBackend, CacheKey, CacheOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitStateStore
from netra_resilience.clock import Clock
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.fallback import FallbackOptions
from netra_resilience.hedging import HedgingOptions
from netra_resilience.hints import retry_after_of
from netra_resilience.llm._fallback import (
    LLM_FALLBACK_CASE,
    Alternate,
    CannedReply,
    DegradedAnswers,
    FallbackChain,
    alternate_hedge,
    answer_cache_filter,
)
from netra_resilience.llm._request import (
    LLM_BREAKER_FAILURE,
    LLM_DEPENDENCY_FAILURE,
    TRANSIENT_LLM_FAILURE,
    llm_cache_key,
    llm_retry_after,
    make_llm_cache_key,
)
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.predicates import ANY_EXCEPTION, TRANSIENT_EXCEPTION
from netra_resilience.rate_limiter import PauseGate, RateLimiterOptions
from netra_resilience.retry import Backoff, RetryOptions, compute_delay
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions
from netra_resilience.validation import Seconds, duration, to_seconds

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


_OWNER = "standard_llm_pipeline"


def llm_semantics_retry(retry: RetryOptions, clock: Clock | None) -> RetryOptions:
    """A caller's ``RetryOptions`` with the LLM classification wherever a field was left at its
    generic default: retry transient LLM failures only, read ``Retry-After`` (an HTTP date on
    the runtime's clock). Timing fields stay as given."""
    changes: dict[str, Any] = {}
    if retry.should_handle is TRANSIENT_EXCEPTION:
        changes["should_handle"] = TRANSIENT_LLM_FAILURE
    if retry.retry_after is retry_after_of:
        changes["retry_after"] = llm_retry_after(clock)
    return dataclasses.replace(retry, **changes) if changes else retry


def llm_semantics_breaker(
    breaker: CircuitBreakerOptions, clock: Clock | None
) -> CircuitBreakerOptions:
    """A caller's ``CircuitBreakerOptions`` with the LLM classification where left at the
    generic default: count provider failures and truncated streams (not the caller's bad
    requests), break for the provider's ``Retry-After``."""
    changes: dict[str, Any] = {}
    if breaker.should_handle is ANY_EXCEPTION:
        changes["should_handle"] = LLM_BREAKER_FAILURE
    if breaker.retry_after is retry_after_of:
        changes["retry_after"] = llm_retry_after(clock)
    return dataclasses.replace(breaker, **changes) if changes else breaker


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


def default_llm_admission(attempt_timeout: float | None) -> AdmissionOptions:
    """``admission=True``: Vegas from 20 (slow start finds the provider's capacity in a few
    round trips) up to 200, a queue of 100 waited in at most one attempt's timeout (a call
    that would time out anyway is better shed at once, with its stale or canned answer), a
    tenth of the limit held for ``HIGH``/``CRITICAL`` calls."""
    return AdmissionOptions(
        algorithm=VegasLimit(initial_limit=20, max_limit=200),
        max_queue=100,
        queue_timeout=attempt_timeout,
        priority_reserve=0.1,
    )


def optional_seconds(field: str, value: Seconds | None) -> float | None:
    return None if value is None else duration(_OWNER, field, value)


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
    shared_pause: bool = True,
    bulkhead: BulkheadOptions | None = None,
    admission: AdmissionOptions | bool | None = None,
    hedging: HedgingOptions | None = None,
    retry_budget: RetryBudget | bool | None = None,
    cache: CacheBackend | None = None,
    cache_ttl: Seconds = 0.0,
    stale_ttl: Seconds = 86_400.0,
    cache_key: CacheKey = llm_cache_key,
    share_cache_across_users: bool = False,
    alternates: Sequence[Alternate] = (),
    hedge_to_alternates: bool = False,
    canned_reply: CannedReply | None = None,
    fallback_on: Callable[[Outcome[Any]], bool] = LLM_DEPENDENCY_FAILURE,
    provider: str | None = None,
    context_window: int | None = None,
) -> Pipeline:
    """Build the recommended LLM pipeline (see the module docstring for the order).

    * Timeouts: ``attempt_timeout`` per attempt (60 s), ``total_timeout`` across retries
      (150 s); ``None`` disables one.
    * ``retry``: default :func:`standard_llm_retry`; ``circuit_breaker``: default opens at a
      50 % failure ratio over >= 10 calls in max(120 s, 2 x attempt timeout), for 30 s (or
      the provider's ``Retry-After``), counting transient failures and truncated streams;
      ``breaker_store`` puts that default breaker's state in a shared store (e.g. Redis).
      Given options keep their timing; a ``should_handle`` / ``retry_after`` left at the
      generic default gets the LLM one (transient provider failures, ``Retry-After`` read on
      ``clock``), so ``RetryOptions(delay=0.2)`` still never retries a 400.
    * ``shared_pause`` (default on): a :class:`PauseGate` inside the retry, so the first
      429 ``Retry-After`` pauses every caller (they get the stale/canned answer at once
      instead of hammering the provider and coming back in one retry wave).
    * ``rate_limiter`` / ``bulkhead``: added only when given; a rate limiter with the stock
      ``pause_hint`` gets the LLM one, so a provider's 429 ``Retry-After`` pauses it.
    * ``admission`` / ``hedging``: added only when given, hedging outside admission (each
      hedge takes its own seat), both inside the stale cache and fallbacks (a shed call gets
      the stale or canned answer). ``retry_budget`` caps the retries, and the hedges when
      ``hedging`` has no budget of its own (see :mod:`netra_resilience.admission`).
      ``admission=True`` / ``retry_budget=True`` take the LLM defaults (``False``: none):
      an adaptive Vegas limit (20 to 200, slow start) with a queue of 100 waited in at most
      ``attempt_timeout`` and a tenth of the limit reserved for ``HIGH``/``CRITICAL`` calls;
      retries (and hedges) at most 20 % of the last 10 s of calls plus 1 per second. For a
      budget shared by replicas pass a ``RedisRetryBudget``.
    * ``cache``: a :class:`CacheBackend` (e.g. ``AiocacheBackend()``). By default it only
      answers *stale*, when the LLM fails (``stale_ttl``); ``cache_ttl > 0`` also serves fresh
      hits. Answers are keyed per caller scope unless ``share_cache_across_users``; refusals,
      streams and fallback answers are never stored.
    * ``alternates``: a fallback chain (other model/deployment/provider, each with its own
      breaker) choosing by the failure's class (:class:`FallbackChain`): with the default
      ``fallback_on`` it also steps for a context overflow, a content-policy refusal and an
      unusable 200 (:data:`LLM_FALLBACK_CASE`); ``provider`` / ``context_window`` describe the
      primary for that choice. ``canned_reply``: the last resort, tried after the stale cache.
      ``hedge_to_alternates``: ``hedging``'s hedges go to the alternates in order (each
      through its own pipeline) instead of repeating the primary.
    """
    total = optional_seconds("total_timeout", total_timeout)
    attempt = optional_seconds("attempt_timeout", attempt_timeout)
    retry_options = (
        standard_llm_retry(clock) if retry is None else llm_semantics_retry(retry, clock)
    )
    for field, value, kind in (
        ("admission", admission, AdmissionOptions),
        ("hedging", hedging, HedgingOptions),
        ("retry_budget", retry_budget, RetryBudget),
    ):
        may_be_bool = kind is not HedgingOptions  # True: the defaults, False: none
        if value is not None and not isinstance(value, kind):
            if may_be_bool and isinstance(value, bool):
                continue
            allowed = ", a bool (True: the defaults)" if may_be_bool else ""
            raise InvalidOptionsError(_OWNER, field, f"must be {kind.__name__}{allowed} or None")
    if admission is True:
        admission = default_llm_admission(attempt)
    elif admission is False:
        admission = None
    if retry_budget is True:
        retry_budget = RetryBudget(ratio=0.2, min_per_second=1.0, ttl=10.0, clock=clock)
    elif retry_budget is False:
        retry_budget = None
    if hedge_to_alternates:
        if hedging is None or not alternates:
            raise InvalidOptionsError(
                _OWNER, "hedge_to_alternates", "needs hedging and at least one alternate"
            )
        targets = tuple(alternate_hedge(a) for a in alternates)
        hedging = dataclasses.replace(hedging, targets=targets)
    if retry_budget is not None:
        retry_options = dataclasses.replace(retry_options, budget=retry_budget)
        if hedging is not None and hedging.budget is None:
            hedging = dataclasses.replace(hedging, budget=retry_budget)
    breaker = (
        default_llm_breaker(clock, attempt, breaker_store)
        if circuit_breaker is None
        else llm_semantics_breaker(circuit_breaker, clock)
    )
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
                # The shared default remembers no prompt: this pipeline gets its own that does.
                key=make_llm_cache_key() if cache_key is llm_cache_key else cache_key,
                ttl=cache_ttl,
                stale_ttl=stale_ttl,
                serve_fresh=to_seconds(cache_ttl) > 0,
                # Only an alternate inside the cache can hand it a fallback answer to keep out.
                should_cache=answer_cache_filter(degraded if alternates else None),
                stale_on=LLM_DEPENDENCY_FAILURE,
                include_scope=not share_cache_across_users,
            )
        )
    inner_canned = canned_reply if cache is None else None
    if alternates or inner_canned is not None:
        chain = FallbackChain(
            alternates,
            canned_reply=inner_canned,
            dependency=name,
            degraded=degraded,
            provider=provider,
            context_window=context_window,
        )
        chain_on = (
            LLM_FALLBACK_CASE
            if fallback_on is LLM_DEPENDENCY_FAILURE and alternates
            else fallback_on
        )
        builder.add_fallback(FallbackOptions(action=chain, should_handle=chain_on))
    if rate_limiter is not None:
        if rate_limiter.pause_hint is retry_after_of:
            # The stock hint reads only a ``retry_after`` attribute; the LLM hint also reads
            # an SDK error's ``Retry-After`` headers, so a 429 pauses the limiter for everyone.
            rate_limiter = dataclasses.replace(rate_limiter, pause_hint=llm_retry_after(clock))
        builder.add_rate_limiter(rate_limiter)
    if hedging is not None:
        builder.add_hedging(hedging)
    if bulkhead is not None:
        builder.add_bulkhead(bulkhead)
    if admission is not None:
        builder.add_admission(admission)
    if total is not None:
        builder.add_timeout(TimeoutOptions(timeout=total))
    builder.add_retry(retry_options)
    if shared_pause:
        # Inside the retry, so the first attempt that gets a 429 pauses every caller at
        # once; their attempts are rejected (never retried: the fallback chain answers)
        # until the hinted time, while the caller that got the 429 retries after it.
        gate = PauseGate(clock=clock, random=random)
        builder.add_rate_limiter(limiter=gate, pause_hint=llm_retry_after(clock))
    builder.add_circuit_breaker(breaker)
    if attempt is not None:
        builder.add_timeout(TimeoutOptions(timeout=attempt))
    return builder.build()


_BREAKER_TIMEOUT_MULTIPLIER = BREAKER_TIMEOUT_MULTIPLIER
