"""``SharedView``: what this process last saw of a circuit that lives in a store.

A shared breaker's ``state``/``retry_after``/``health`` are synchronous properties, so they
cannot ask the store; they answer from the last permit, transition or snapshot seen here.
Times are kept on this process's clock (the store only ever sends relative durations).
"""

from __future__ import annotations

from collections.abc import Callable

from netra_resilience.circuit_breaker._events import CircuitStateChange
from netra_resilience.circuit_breaker._health import EMPTY_HEALTH, HealthInfo
from netra_resilience.circuit_breaker._state import CircuitState
from netra_resilience.circuit_breaker._store import CircuitSnapshot

_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class SharedView:
    __slots__ = ("_blocked_until", "_now", "health", "last_failure_type", "last_state")

    def __init__(self, now: Callable[[], float], state: CircuitState) -> None:
        self._now = now
        self._blocked_until = 0.0
        self.last_state = state
        self.health: HealthInfo = EMPTY_HEALTH
        self.last_failure_type: str | None = None

    def saw(
        self,
        state: CircuitState,
        changes: tuple[CircuitStateChange, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        now = self._now()
        if retry_after is not None:
            self._blocked_until = now + retry_after
        for change in changes:
            self.health = change.health
            if change.new_state is _OPEN and change.break_duration is not None:
                self._blocked_until = now + change.break_duration
            if change.failure_type is not None:
                self.last_failure_type = change.failure_type
        self.last_state = state

    def saw_snapshot(self, snapshot: CircuitSnapshot) -> None:
        self._blocked_until = self._now() + (snapshot.retry_after or 0.0)
        self.last_state = snapshot.state
        self.health = snapshot.health
        self.last_failure_type = snapshot.last_failure_type

    @property
    def state(self) -> CircuitState:
        """The last state seen; an open circuit whose break has elapsed reads half-open."""
        if self.last_state is _OPEN and self._now() >= self._blocked_until:
            return _HALF_OPEN
        return self.last_state

    @property
    def retry_after(self) -> float | None:
        if self.last_state is _OPEN:
            return max(self._blocked_until - self._now(), 0.0)
        return None
