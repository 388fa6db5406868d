"""One breaker's state machine over a health window: thresholds as plain data
(:class:`CircuitPolicy`), break timing, and :class:`CircuitController`.

The controller never awaits and never reads a clock on its own: every step takes ``now``, so
an in-process breaker, the in-memory store and a backend breaker all run the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from netra_resilience.circuit_breaker._events import CircuitState, CircuitStateChange, EventSink
from netra_resilience.circuit_breaker._windows import (
    ConsecutiveWindow,
    CountWindow,
    HealthInfo,
    HealthWindow,
    time_window,
)
from netra_resilience.hints import RetryAfterHint
from netra_resilience.validation import to_seconds

if TYPE_CHECKING:
    from netra_resilience.context import ResilienceContext
    from netra_resilience.outcome import Outcome


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """The breaker's thresholds, as plain data a store (or a Lua script) can evaluate.

    ``window="consecutive"`` (backend breakers only) trips at ``minimum_throughput`` failures
    in a row; the ratios then play no part.
    """

    failure_ratio: float = 0.5
    minimum_throughput: int = 10
    sampling_duration: float = 30.0
    window: Literal["time", "count", "consecutive"] = "time"
    window_size: int = 100
    slow_call_ratio: float = 1.0
    break_duration: float = 15.0
    permitted_calls_in_half_open: int = 1
    half_open_max_wait: float = 15.0

    @property
    def effective_minimum_throughput(self) -> int:
        """A count window can never hold more than ``window_size`` calls (resilience4j)."""
        if self.window == "count":
            return min(self.minimum_throughput, self.window_size)
        return self.minimum_throughput


@dataclass(frozen=True, slots=True)
class BreakDurationArgs:
    """What a ``break_duration_generator`` sees when the circuit opens.

    ``half_open_attempts`` counts the half-open trials since the circuit last closed (0 on the
    first break), so ``lambda a: min(2 ** a.half_open_attempts * 5, 300)`` backs off.
    """

    failure_ratio: float
    failure_count: int
    half_open_attempts: int
    context: ResilienceContext | None = None


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    state: CircuitState
    retry_after: float | None
    health: HealthInfo
    last_failure_type: str | None = None


class BreakTiming:
    """``duration(args, outcome)``: the break for the outcome that opened the circuit.

    ``generator(args)`` replaces the static duration; a generator that raises or answers
    nonsense (negative, NaN, not a number) falls back to the static one rather than breaking
    the call that tripped. An upstream ``Retry-After`` on the breaking outcome (read by
    ``hint``) lengthens the break (a server that says "come back in 60 s" is not probed after
    15 s). ``cap`` bounds all of it, so a hostile hint cannot park the breaker.
    """

    __slots__ = ("_cap", "_generator", "_hint", "_static")

    def __init__(
        self,
        *,
        static: float,
        cap: float,
        generator: Callable[[BreakDurationArgs], float] | None = None,
        hint: RetryAfterHint | None = None,
    ) -> None:
        self._static = static
        self._cap = cap
        self._generator = generator
        self._hint = hint

    def generated(self, args: BreakDurationArgs) -> float:
        generator = self._generator
        if generator is None:
            return self._static
        try:
            value = generator(args)
            seconds = to_seconds(value)
        except Exception:
            return self._static
        if math.isnan(seconds) or seconds < 0:
            return self._static
        return min(seconds, self._cap)

    def hinted(self, seconds: float, outcome: Outcome[Any] | None) -> float:
        hint = self._hint
        if hint is None or outcome is None:
            return seconds
        try:
            upstream = hint(outcome)
            if upstream is None or not upstream > seconds:  # NaN compares False: ignored
                return seconds
            return min(float(upstream), self._cap)
        except Exception:  # a broken hint function must not break the call that tripped
            return seconds

    @property
    def has_generator(self) -> bool:
        return self._generator is not None

    def static_for(self, outcome: Outcome[Any] | None) -> float:
        """The break before any generator runs (what a shared store is told up front)."""
        return self.hinted(self._static, outcome)

    def duration(self, args: BreakDurationArgs, outcome: Outcome[Any] | None) -> float:
        return self.hinted(self.generated(args), outcome)


def failure_type_of(outcome: Outcome[Any] | None) -> str | None:
    """The type name of a failed outcome, safe for health output (never the message)."""
    if outcome is None:
        return None
    if outcome.exception is not None:
        return type(outcome.exception).__name__
    return f"result:{type(outcome.result).__name__}"


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
ISOLATED = CircuitState.ISOLATED

BreakFn = Callable[[BreakDurationArgs, "Outcome[Any] | None"], float]


def _window(policy: CircuitPolicy, monotonic: Callable[[], float]) -> HealthWindow:
    if policy.window == "time":
        return time_window(policy.sampling_duration, monotonic)
    if policy.window == "count":
        return CountWindow(policy.window_size)
    return ConsecutiveWindow()


# What a controller is configured with (the rest is its state): shared by per-key copies.
_CONFIG = (
    "_break_fn", "_max_wait", "_min_throughput", "_permitted", "_ratio", "_slow_ratio",
    "_trip_reason", "dependency", "policy",
)  # fmt: skip


class CircuitController:
    """One breaker's state machine: ``acquire`` before a call, ``record``/``abandon`` after.

    There are no timers: the transitions due at ``now`` (an elapsed break half-opening, a hung
    probe re-opening) are made lazily by the next step that looks (:meth:`advance`).
    """

    __slots__ = (
        "_break_fn", "_events", "_max_wait", "_min_throughput", "_permitted", "_ratio",
        "_slow_ratio", "_trip_reason", "blocked_until", "break_duration", "dependency", "epoch",
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
        consecutive = policy.window == "consecutive"
        self._trip_reason = "consecutive_failures" if consecutive else "failure_ratio"
        self._start(monotonic, isolated)

    def _start(self, monotonic: Callable[[], float], isolated: bool) -> None:
        """The state of a new breaker: a fresh window, closed (or isolated)."""
        self.window: HealthWindow = _window(self.policy, monotonic)
        self.state = ISOLATED if isolated else CLOSED
        self.epoch = 0
        self.blocked_until = math.inf if isolated else 0.0
        self.opened_at = self.break_duration = self.half_open_deadline = 0.0
        self.half_open_attempts = 0
        self.probes_admitted = self.probes_done = self.probe_failures = self.probe_slow = 0
        self.last_failure_type: str | None = None

    def keyed_copy(self, events: EventSink, monotonic: Callable[[], float]) -> CircuitController:
        """A new closed breaker with this one's policy and timing (shared, not rebuilt),
        reporting to ``events``: a per-key pipeline's."""
        copy = CircuitController.__new__(CircuitController)
        for slot in _CONFIG:
            setattr(copy, slot, getattr(self, slot))
        copy._events = events
        copy._start(monotonic, False)
        return copy

    # -- admission -------------------------------------------------------------------
    def advance(self, now: float, context: ResilienceContext | None = None) -> CircuitState:
        """Make the lazy transitions due at ``now`` (there are no timers); return the state."""
        if (
            self.state is HALF_OPEN
            and now >= self.half_open_deadline
            and self.probes_done < self.probes_admitted
        ):  # a probe hung past half_open_max_wait: never stay wedged half-open
            self._open(now, context, "probe_abandoned")
        if self.state is OPEN and now >= self.blocked_until:
            self._half_open(now, context, "break_elapsed")
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

    def probe(self, now: float) -> int:
        """Take a half-open probe slot now, ending an open break early (a caller that knows
        the dependency may be back, e.g. an operator or a restarted server); ``-1`` if none."""
        if self.advance(now) is OPEN:
            self._half_open(now, None, "probe_requested")
        if self.state is CLOSED:
            return -1  # nothing to probe
        return self.acquire(now)

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

    # -- outcomes --------------------------------------------------------------------
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
                reason = self._trip_reason
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

    def _half_open(self, now: float, context: ResilienceContext | None, reason: str) -> None:
        self.state = HALF_OPEN
        self.epoch += 1
        self.half_open_attempts += 1
        self.probes_admitted = self.probes_done = self.probe_failures = self.probe_slow = 0
        self.half_open_deadline = now + self._max_wait
        self._publish(OPEN, reason, now, context)

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
