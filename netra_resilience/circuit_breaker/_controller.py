"""``CircuitController``: admission and result counting on top of the breaker's state.

In process, synchronous, one event loop, so no locks. An admitted call carries the ``epoch``
it was admitted in. A result whose epoch is no longer current is *late*: while the circuit is
not closed it only updates the counts (Polly: no second ``opened``, no longer break); once a
newer closed period has begun it is dropped, because the counts were reset on closing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netra_resilience.circuit_breaker._state import CircuitState
from netra_resilience.circuit_breaker._store import CircuitSnapshot
from netra_resilience.circuit_breaker._transitions import CLOSED, HALF_OPEN, OPEN, CircuitCore
from netra_resilience.outcome import Outcome

if TYPE_CHECKING:
    from netra_resilience.context import ResilienceContext


def failure_type_of(outcome: Outcome[Any] | None) -> str | None:
    """The type name of a failed outcome, safe for health output (never the message)."""
    if outcome is None:
        return None
    if outcome.exception is not None:
        return type(outcome.exception).__name__
    return f"result:{type(outcome.result).__name__}"


class CircuitController(CircuitCore):
    """One breaker's state machine: ``acquire`` before a call, ``record``/``abandon`` after."""

    __slots__ = ()

    def advance(self, now: float, context: ResilienceContext | None = None) -> CircuitState:
        """Make the lazy transitions due at ``now`` (there are no timers); return the state."""
        if (
            self.state is HALF_OPEN
            and now >= self.half_open_deadline
            and self.probes_done < self.probes_admitted
        ):  # a probe hung past half_open_max_wait: never stay wedged half-open
            self._open(now, context, "probe_abandoned")
        if self.state is OPEN and now >= self.blocked_until:
            self._half_open(now, context)
        return self.state

    def acquire(self, now: float, context: ResilienceContext | None = None) -> int:
        """The epoch an admitted call (or probe) runs in, or ``-1`` when it is rejected."""
        state = self.advance(now, context)
        if state is CLOSED:
            return self.epoch
        if state is HALF_OPEN and self.probes_admitted < self._permitted:
            self.probes_admitted += 1
            return self.epoch
        return -1

    def retry_after(self, now: float) -> float | None:
        """Seconds until a call may be admitted; ``None`` when admitted now or isolated."""
        state = self.state
        if state is OPEN:
            return max(self.blocked_until - now, 0.0)
        if state is HALF_OPEN and self.probes_admitted >= self._permitted:
            return max(self.half_open_deadline - now, 0.0)
        return None

    def snapshot(self, now: float) -> CircuitSnapshot:
        """A side-effect-free read; an elapsed break reads as half-open."""
        state = self.state
        if state is OPEN and now >= self.blocked_until:
            state = HALF_OPEN
        return CircuitSnapshot(
            state, self.retry_after(now), self.window.health(now), self.last_failure_type
        )

    def record(
        self,
        epoch: int,
        now: float,
        failed: bool,
        slow: bool,
        *,
        context: ResilienceContext | None = None,
        outcome: Outcome[Any] | None = None,
        break_duration: float | None = None,
        failure_type: str | None = None,
    ) -> None:
        """Count a call admitted in ``epoch`` and make the transition it causes."""
        if epoch != self.epoch:
            if self.state is not CLOSED:
                self.window.add(now, failed, slow)  # late result: counts only
            return
        if failed and failure_type is None:
            failure_type = failure_type_of(outcome)
        if self.state is CLOSED:
            window = self.window
            window.add(now, failed, slow)
            if not (failed or slow):
                return
            health = window.health(now)
            if health.throughput < self._min_throughput:
                return
            if failed and health.failure_ratio >= self._ratio:
                reason = "failure_ratio"
            elif slow and health.slow_call_ratio >= self._slow_ratio:
                reason = "slow_call_ratio"
            else:
                return
        else:  # a half-open probe: only probes are admitted in HALF_OPEN
            self.probes_done += 1
            self.probe_failures += failed
            self.probe_slow += slow
            permitted = self._permitted
            if self.probe_failures / permitted >= self._ratio:
                reason = "probe_failed"
            elif self.probe_slow / permitted >= self._slow_ratio:
                reason = "probe_slow"
            elif self.probes_done >= permitted:
                self._close(now, context, "probes_succeeded")
                return
            else:
                return
            health = None
        self._open(
            now,
            context,
            reason,
            outcome=outcome,
            health=health,
            duration=break_duration,
            failure_type=failure_type,
        )

    def abandon(
        self,
        epoch: int,
        now: float,
        context: ResilienceContext | None = None,
        *,
        break_duration: float | None = None,
    ) -> None:
        """A call admitted in ``epoch`` never finished (cancelled): a probe re-opens."""
        if epoch == self.epoch and self.state is HALF_OPEN:
            self._open(now, context, "probe_abandoned", duration=break_duration)
