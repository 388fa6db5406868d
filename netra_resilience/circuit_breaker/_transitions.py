"""The breaker's state and its transitions: open, half-open, close, isolate.

Every transition bumps ``epoch`` and is published (only if someone listens) as a
:class:`CircuitStateChange`. :class:`~._controller.CircuitController` adds admission and
result counting on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netra_resilience.circuit_breaker._events import CircuitStateChange, EventSink
from netra_resilience.circuit_breaker._health import CountWindow, HealthInfo, time_window
from netra_resilience.circuit_breaker._options import BreakDurationArgs
from netra_resilience.circuit_breaker._state import CircuitState
from netra_resilience.circuit_breaker._store import CircuitPolicy
from netra_resilience.outcome import Outcome

if TYPE_CHECKING:
    from netra_resilience.context import ResilienceContext

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
ISOLATED = CircuitState.ISOLATED

BreakFn = Callable[[BreakDurationArgs, "Outcome[Any] | None"], float]


class CircuitCore:
    """State, window, probe counters and break timing of one breaker."""

    __slots__ = (
        "_break_fn", "_events", "_max_wait", "_min_throughput", "_permitted", "_ratio",
        "_slow_ratio", "blocked_until", "break_duration", "dependency", "epoch",
        "half_open_attempts", "half_open_deadline", "last_failure_type", "opened_at", "policy",
        "probe_failures", "probe_slow", "probes_admitted", "probes_done", "state", "window",
    )  # fmt: skip

    def __init__(
        self,
        policy: CircuitPolicy,
        events: EventSink,
        *,
        monotonic: Callable[[], float],
        dependency: str = "",
        break_fn: BreakFn | None = None,
        isolated: bool = False,
    ) -> None:
        self.policy = policy
        self.dependency = dependency
        self._events = events
        self._break_fn = break_fn or (lambda _args, _outcome: policy.break_duration)
        self._ratio = policy.failure_ratio
        self._slow_ratio = policy.slow_call_ratio
        self._min_throughput = policy.effective_minimum_throughput
        self._permitted = policy.permitted_calls_in_half_open
        self._max_wait = policy.half_open_max_wait
        self.window = (
            time_window(policy.sampling_duration, monotonic)
            if policy.window == "time"
            else CountWindow(policy.window_size)
        )
        self.state = ISOLATED if isolated else CLOSED
        self.epoch = 0
        self.blocked_until = math.inf if isolated else 0.0
        self.opened_at = self.break_duration = self.half_open_deadline = 0.0
        self.half_open_attempts = 0
        self.probes_admitted = self.probes_done = self.probe_failures = self.probe_slow = 0
        self.last_failure_type: str | None = None

    # -- manual control --------------------------------------------------------------
    def isolate(self, now: float, context: ResilienceContext | None = None) -> None:
        if self.state is ISOLATED:
            return
        old = self.state
        self.state = ISOLATED
        self.epoch += 1
        self.blocked_until = math.inf
        self._publish(old, "manual", now, context)

    def close(self, now: float, context: ResilienceContext | None = None) -> None:
        """Close by hand; the counts are reset even when it was closed already."""
        self._close(now, context, "manual")

    def set_break(self, epoch: int, seconds: float) -> bool:
        """Re-time the current break (a generator's answer); ignored if the state moved on."""
        if epoch != self.epoch or self.state is not OPEN:
            return False
        self.break_duration = seconds
        self.blocked_until = self.opened_at + seconds
        return True

    # -- transitions -----------------------------------------------------------------
    def _open(
        self,
        now: float,
        context: ResilienceContext | None,
        reason: str,
        *,
        outcome: Outcome[Any] | None = None,
        health: HealthInfo | None = None,
        duration: float | None = None,
        failure_type: str | None = None,
    ) -> None:
        old = self.state
        if health is None:
            health = self.window.health(now)
        if duration is None:
            args = BreakDurationArgs(
                health.failure_ratio, health.failures, self.half_open_attempts, context
            )
            duration = self._break_fn(args, outcome)
        self.state = OPEN
        self.epoch += 1
        self.opened_at = now
        self.break_duration = duration
        self.blocked_until = now + duration
        if failure_type is not None:
            self.last_failure_type = failure_type
        self._publish(
            old, reason, now, context, duration=duration, failure_type=failure_type, health=health
        )

    def _half_open(self, now: float, context: ResilienceContext | None) -> None:
        self.state = HALF_OPEN
        self.epoch += 1
        self.half_open_attempts += 1
        self.probes_admitted = self.probes_done = self.probe_failures = self.probe_slow = 0
        self.half_open_deadline = now + self._max_wait
        self._publish(OPEN, "break_elapsed", now, context)

    def _close(self, now: float, context: ResilienceContext | None, reason: str) -> None:
        old = self.state
        self.state = CLOSED
        self.epoch += 1
        self.blocked_until = 0.0
        self.half_open_attempts = 0
        self.window.reset(now)
        if old is not CLOSED:
            self._publish(old, reason, now, context)

    def _publish(
        self,
        old: CircuitState,
        reason: str,
        now: float,
        context: ResilienceContext | None,
        *,
        duration: float | None = None,
        failure_type: str | None = None,
        health: HealthInfo | None = None,
    ) -> None:
        events = self._events
        if not events.active:  # nobody listens: build nothing
            return
        events.publish(
            CircuitStateChange(
                self.dependency,
                old,
                self.state,
                reason,
                health if health is not None else self.window.health(now),
                self.epoch,
                duration,
                self.half_open_attempts,
                failure_type,
                context,
            )
        )
