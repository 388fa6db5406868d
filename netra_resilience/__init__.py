"""netra-resilience: keep LLM agent backends answering when their dependencies fail.

The root holds what an application touches: the runtime object, pipelines and their options,
the errors, the per-request degradation, the LLM preset and the engine wrapper. Everything
else lives in its area's namespace: ``netra_resilience.circuit_breaker``, ``.retry``,
``.timeout``, ``.rate_limiter``, ``.bulkhead``, ``.cache``, ``.fallback``, ``.chaos``,
``.engine``, ``.health``, ``.llm``, ``.routing``, ``.sessions``, ``.telemetry``, ``.testing``,
and the third-party adapters under ``netra_resilience.integrations``.
"""

from __future__ import annotations

from netra_resilience.bulkhead import BulkheadOptions
from netra_resilience.cache import CacheOptions
from netra_resilience.chaos import ChaosOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.context import ResilienceContext, current_degradation, use_context
from netra_resilience.degradation import Degradation, DegradationReason
from netra_resilience.engine import Hook, RunRequest, Tool, wrap_engine
from netra_resilience.exceptions import (
    BrokenCircuitError,
    BulkheadRejectedError,
    ExecutionRejectedError,
    InvalidOptionsError,
    IsolatedCircuitError,
    NetraError,
    RateLimitRejectedError,
    TimeoutRejectedError,
)
from netra_resilience.fallback import FallbackOptions
from netra_resilience.health import Criticality, Dependency
from netra_resilience.llm import standard_llm_pipeline
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.rate_limiter import RateLimiterOptions
from netra_resilience.retry import RetryOptions
from netra_resilience.runtime import Resilience
from netra_resilience.timeout import TimeoutOptions

__version__ = "0.2.0"

__all__ = [
    "BrokenCircuitError",
    "BulkheadOptions",
    "BulkheadRejectedError",
    "CacheOptions",
    "ChaosOptions",
    "CircuitBreakerOptions",
    "Criticality",
    "Degradation",
    "DegradationReason",
    "Dependency",
    "ExecutionRejectedError",
    "FallbackOptions",
    "Hook",
    "InvalidOptionsError",
    "IsolatedCircuitError",
    "NetraError",
    "Outcome",
    "Pipeline",
    "PipelineBuilder",
    "RateLimitRejectedError",
    "RateLimiterOptions",
    "Resilience",
    "ResilienceContext",
    "RetryOptions",
    "RunRequest",
    "TimeoutOptions",
    "TimeoutRejectedError",
    "Tool",
    "current_degradation",
    "standard_llm_pipeline",
    "use_context",
    "wrap_engine",
]
