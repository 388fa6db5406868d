"""Circuit breaker: fail fast while a dependency is failing, probe before trusting it again.

Failure-ratio (and optional slow-call-ratio) over a time or count window with a minimum
throughput; lazy open -> half-open; exactly ``permitted_calls_in_half_open`` probes; a
cancelled or hung probe re-opens; manual isolate/close; ordered state-change events.
"""

from netra_resilience.circuit_breaker._control import CircuitBreakerControl
from netra_resilience.circuit_breaker._events import CircuitStateChange, StateListener
from netra_resilience.circuit_breaker._health import (
    CountWindow,
    HealthInfo,
    RollingTimeWindow,
    time_window,
)
from netra_resilience.circuit_breaker._memory_store import InMemoryCircuitStateStore
from netra_resilience.circuit_breaker._options import BreakDurationArgs, CircuitBreakerOptions
from netra_resilience.circuit_breaker._shared import SharedCircuitBreakerStrategy
from netra_resilience.circuit_breaker._state import CircuitBreakerStateProvider, CircuitState
from netra_resilience.circuit_breaker._store import (
    CallReport,
    CircuitPolicy,
    CircuitSnapshot,
    CircuitStateStore,
    Permit,
)
from netra_resilience.circuit_breaker._strategy import CircuitBreakerStrategy

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
