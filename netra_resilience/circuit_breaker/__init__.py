"""Circuit breaker: fail fast while a dependency is failing, probe before trusting it again.

Failure-ratio (and optional slow-call-ratio) over a time or count window with a minimum
throughput; lazy open -> half-open; exactly ``permitted_calls_in_half_open`` probes; a
cancelled or hung probe re-opens; manual isolate/close; ordered state-change events.
"""

from netra_resilience.circuit_breaker._breaker import (
    BreakDurationArgs,
    CallReport,
    CircuitBreakerControl,
    CircuitBreakerOptions,
    CircuitBreakerStateProvider,
    CircuitBreakerStrategy,
    CircuitPolicy,
    CircuitSnapshot,
    CircuitState,
    CircuitStateChange,
    CircuitStateStore,
    InMemoryCircuitStateStore,
    Permit,
    SharedCircuitBreakerStrategy,
    StateListener,
)
from netra_resilience.circuit_breaker._windows import (
    CountWindow,
    HealthInfo,
    RollingTimeWindow,
    time_window,
)

__all__ = [
    "BreakDurationArgs",
    "CallReport",
    "CircuitBreakerControl",
    "CircuitBreakerOptions",
    "CircuitBreakerStateProvider",
    "CircuitBreakerStrategy",
    "CircuitPolicy",
    "CircuitSnapshot",
    "CircuitState",
    "CircuitStateChange",
    "CircuitStateStore",
    "CountWindow",
    "HealthInfo",
    "InMemoryCircuitStateStore",
    "Permit",
    "RollingTimeWindow",
    "SharedCircuitBreakerStrategy",
    "StateListener",
    "time_window",
]
