"""Circuit states and the read-only state provider handed to code outside the pipeline."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from netra_resilience.exceptions import InvalidOptionsError

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._health import HealthInfo


class CircuitState(StrEnum):
    """Where a breaker stands.

    ``ISOLATED`` is set by hand (:class:`CircuitBreakerControl` or ``strategy.isolate()``) and
    only a manual close leaves it; the other three are driven by call outcomes.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    ISOLATED = "isolated"


class _Readable(Protocol):
    """What a provider reads from the breaker it is bound to (the strategy)."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> CircuitState: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def last_failure_type(self) -> str | None: ...
    @property
    def health(self) -> HealthInfo: ...


class CircuitBreakerStateProvider:
    """Reads one breaker's state from outside its pipeline (health endpoints, dashboards).

    Pass it as ``CircuitBreakerOptions(state_provider=...)``; building the pipeline binds it.
    One provider observes exactly one breaker, so a second binding is refused. Before it is
    bound it reports a closed circuit, which is what a not-yet-built dependency looks like.
    """

    __slots__ = ("_breaker",)

    def __init__(self) -> None:
        self._breaker: _Readable | None = None

    @property
    def is_bound(self) -> bool:
        return self._breaker is not None

    @property
    def state(self) -> CircuitState:
        """The current state; an expired break shows as ``HALF_OPEN`` when read (lazy)."""
        breaker = self._breaker
        return CircuitState.CLOSED if breaker is None else breaker.state

    @property
    def retry_after(self) -> float | None:
        """Seconds until the breaker admits a call again, or ``None`` when it admits now."""
        breaker = self._breaker
        return None if breaker is None else breaker.retry_after

    @property
    def last_failure_type(self) -> str | None:
        """Type name of the outcome that last opened the circuit (never its message)."""
        breaker = self._breaker
        return None if breaker is None else breaker.last_failure_type

    @property
    def health(self) -> HealthInfo | None:
        breaker = self._breaker
        return None if breaker is None else breaker.health

    def _bind(self, breaker: _Readable) -> None:
        if self._breaker is not None:
            raise InvalidOptionsError(
                "CircuitBreakerOptions",
                "state_provider",
                f"is already bound to breaker {self._breaker.name!r}; use one provider per breaker",
            )
        self._breaker = breaker
