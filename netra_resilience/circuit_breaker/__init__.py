"""Circuit breaker: fail fast while a dependency is failing, probe before trusting it again.

Failure-ratio (and optional slow-call-ratio) over a time or count window with a minimum
throughput; lazy open -> half-open; exactly ``permitted_calls_in_half_open`` probes; a
cancelled or hung probe re-opens; manual isolate/close; ordered state-change events.

One strategy, :class:`CircuitBreakerStrategy`, whatever holds its state: the process
(``store=None``) or a :class:`CircuitStateStore` shared by every replica (Redis).
:class:`BackendBreaker` is the same state machine in front of an infrastructure backend
(Redis, a database): consecutive failures open it, a background probe closes it, and every
user of that backend shares it.

Parts: ``_options`` (options, manual control, state provider), ``_strategy`` (the strategy),
``_state`` (its state backends), ``_controller`` (the state machine and break timing),
``_windows`` (health windows), ``_store`` (the store protocol and the in-memory store),
``_events`` (states and ordered change events), ``_backend_breaker`` (the backend breaker).
"""

from netra_resilience.circuit_breaker._backend_breaker import (
    BACKEND_UNAVAILABLE,
    BackendBreaker,
)
from netra_resilience.circuit_breaker._controller import (
    BreakDurationArgs,
    CircuitPolicy,
    CircuitSnapshot,
)
from netra_resilience.circuit_breaker._events import (
    CircuitState,
    CircuitStateChange,
    StateListener,
)
from netra_resilience.circuit_breaker._options import (
    CircuitBreakerControl,
    CircuitBreakerOptions,
    CircuitBreakerStateProvider,
)
from netra_resilience.circuit_breaker._store import (
    CallReport,
    CircuitStateStore,
    InMemoryCircuitStateStore,
    Permit,
)
from netra_resilience.circuit_breaker._strategy import CircuitBreakerStrategy
from netra_resilience.circuit_breaker._windows import (
    CountWindow,
    HealthInfo,
    RollingTimeWindow,
    time_window,
)

__all__ = [
    "BACKEND_UNAVAILABLE",
    "BackendBreaker",
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
    "StateListener",
    "time_window",
]
