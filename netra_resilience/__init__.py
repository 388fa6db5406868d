"""netra-resilience: keep LLM agent backends answering when their dependencies fail."""

from __future__ import annotations

from .builder import PipelineBuilder
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
from .registry import PipelineRegistry
from .strategy import BuildContext, Callback, Strategy, StrategyOptions
from .telemetry import (
    CompositeListener,
    LoggingListener,
    Severity,
    TelemetryEvent,
    TelemetryListener,
    TelemetrySource,
)

__version__ = "0.1.0"

__all__ = [
    "ANY_EXCEPTION",
    "EMPTY_PIPELINE",
    "SYSTEM_CLOCK",
    "TRANSIENT_EXCEPTION",
    "BrokenCircuitError",
    "BuildContext",
    "BulkheadRejectedError",
    "Callback",
    "Clock",
    "CompositeListener",
    "Degradation",
    "DegradationEntry",
    "DegradationReason",
    "ExecutionRejectedError",
    "InvalidOptionsError",
    "IsolatedCircuitError",
    "LoggingListener",
    "NetraError",
    "Outcome",
    "OutcomePredicate",
    "Pipeline",
    "PipelineBuilder",
    "PipelineRegistry",
    "RateLimitRejectedError",
    "ResilienceContext",
    "ResilienceKey",
    "ResilienceProperties",
    "Severity",
    "Strategy",
    "StrategyOptions",
    "SystemClock",
    "TelemetryEvent",
    "TelemetryListener",
    "TelemetrySource",
    "TimeoutRejectedError",
    "bind_context",
    "current_context",
    "current_degradation",
    "handle",
    "handle_exception",
    "handle_result",
    "unbind_context",
    "use_context",
]
