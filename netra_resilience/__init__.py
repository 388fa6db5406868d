"""netra-resilience: keep LLM agent backends answering when their dependencies fail."""

from __future__ import annotations

from .backoff import Backoff, compute_delay
from .builder import PipelineBuilder
from .bulkhead import BulkheadOptions, BulkheadStrategy, ConcurrencyLimiter
from .cache import (
    CacheBackend,
    CacheEntry,
    CacheOptions,
    CacheStrategy,
    InMemoryTTLCache,
    stable_key,
)
from .chaos import ChaosControl, ChaosOptions, ChaosStrategy
from .circuit_breaker import (
    CircuitBreakerControl,
    CircuitBreakerOptions,
    CircuitBreakerStateProvider,
    CircuitBreakerStrategy,
    CircuitState,
    CircuitStateStore,
    InMemoryCircuitStateStore,
)
from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .context import (
    ResilienceContext,
    ResilienceKey,
    ResilienceProperties,
    bind_context,
    current_context,
    current_degradation,
    unbind_context,
    use_context,
)
from .degradation import Degradation, DegradationEntry, DegradationReason
from .engine import (
    EngineMiddleware,
    EventOptions,
    Hook,
    Middleware,
    ResilientEngine,
    RunEvents,
    RunRequest,
    RunResult,
    RunStatus,
    Tool,
    ToolError,
    ToolErrorReason,
    ToolOk,
    ToolResult,
    wrap_engine,
)
from .exceptions import (
    BrokenCircuitError,
    BulkheadRejectedError,
    ExecutionRejectedError,
    InvalidOptionsError,
    IsolatedCircuitError,
    NetraError,
    RateLimitRejectedError,
    TimeoutRejectedError,
)
from .fallback import FallbackArgs, FallbackOptions, FallbackStrategy
from .health import Criticality, Dependency, HealthMonitor, HealthStatus, ServiceRegistry
from .outcome import Outcome
from .pipeline import EMPTY_PIPELINE, Pipeline
from .predicates import (
    ANY_EXCEPTION,
    TRANSIENT_EXCEPTION,
    OutcomePredicate,
    handle,
    handle_exception,
    handle_result,
)
from .presets import standard_llm_pipeline
from .rate_limiter import (
    PartitionedRateLimiter,
    RateLimiter,
    RateLimiterOptions,
    RateLimiterStrategy,
    TokenBucketLimiter,
)
from .registry import PipelineRegistry
from .replay import ReplayBuffer
from .retry import OnRetryArgs, RetryDelayArgs, RetryOptions, RetryStrategy
from .routing import AllOpenPolicy, EndpointPool, EndpointPoolOptions, NoHealthyEndpointError
from .sessions import SessionStore
from .strategy import BuildContext, Callback, Strategy, StrategyOptions
from .telemetry import (
    CompositeListener,
    LoggingListener,
    Severity,
    TelemetryEvent,
    TelemetryListener,
    TelemetrySource,
)
from .timeout import OnTimeoutArgs, TimeoutOptions, TimeoutStrategy

__version__ = "0.1.0"

__all__ = [
    "ANY_EXCEPTION",
    "EMPTY_PIPELINE",
    "SYSTEM_CLOCK",
    "TRANSIENT_EXCEPTION",
    "AllOpenPolicy",
    "Backoff",
    "BrokenCircuitError",
    "BuildContext",
    "BulkheadOptions",
    "BulkheadRejectedError",
    "BulkheadStrategy",
    "CacheBackend",
    "CacheEntry",
    "CacheOptions",
    "CacheStrategy",
    "Callback",
    "ChaosControl",
    "ChaosOptions",
    "ChaosStrategy",
    "CircuitBreakerControl",
    "CircuitBreakerOptions",
    "CircuitBreakerStateProvider",
    "CircuitBreakerStrategy",
    "CircuitState",
    "CircuitStateStore",
    "Clock",
    "CompositeListener",
    "ConcurrencyLimiter",
    "Criticality",
    "Degradation",
    "DegradationEntry",
    "DegradationReason",
    "Dependency",
    "EndpointPool",
    "EndpointPoolOptions",
    "EngineMiddleware",
    "EventOptions",
    "ExecutionRejectedError",
    "FallbackArgs",
    "FallbackOptions",
    "FallbackStrategy",
    "HealthMonitor",
    "HealthStatus",
    "Hook",
    "InMemoryCircuitStateStore",
    "InMemoryTTLCache",
    "InvalidOptionsError",
    "IsolatedCircuitError",
    "LoggingListener",
    "Middleware",
    "NetraError",
    "NoHealthyEndpointError",
    "OnRetryArgs",
    "OnTimeoutArgs",
    "Outcome",
    "OutcomePredicate",
    "PartitionedRateLimiter",
    "Pipeline",
    "PipelineBuilder",
    "PipelineRegistry",
    "RateLimitRejectedError",
    "RateLimiter",
    "RateLimiterOptions",
    "RateLimiterStrategy",
    "ReplayBuffer",
    "ResilienceContext",
    "ResilienceKey",
    "ResilienceProperties",
    "ResilientEngine",
    "RetryDelayArgs",
    "RetryOptions",
    "RetryStrategy",
    "RunEvents",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "ServiceRegistry",
    "SessionStore",
    "Severity",
    "Strategy",
    "StrategyOptions",
    "SystemClock",
    "TelemetryEvent",
    "TelemetryListener",
    "TelemetrySource",
    "TimeoutOptions",
    "TimeoutRejectedError",
    "TimeoutStrategy",
    "TokenBucketLimiter",
    "Tool",
    "ToolError",
    "ToolErrorReason",
    "ToolOk",
    "ToolResult",
    "bind_context",
    "compute_delay",
    "current_context",
    "current_degradation",
    "handle",
    "handle_exception",
    "handle_result",
    "stable_key",
    "standard_llm_pipeline",
    "unbind_context",
    "use_context",
    "wrap_engine",
]
