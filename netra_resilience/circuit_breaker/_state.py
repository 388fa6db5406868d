"""Where one breaker's state lives: :class:`LocalState` (an in-process controller) or
:class:`SharedState` (a :class:`CircuitStateStore` shared with other breakers and processes).

The strategy runs the same steps over either (``acquire`` -> call -> ``record`` or
``abandon``); only the in-process backend also lets it read the controller directly on its
hot path.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from netra_resilience.circuit_breaker._controller import (
    BreakDurationArgs,
    BreakTiming,
    CircuitController,
    CircuitPolicy,
    CircuitSnapshot,
    failure_type_of,
)
from netra_resilience.circuit_breaker._events import CircuitState, CircuitStateChange, StateEvents
from netra_resilience.circuit_breaker._store import CallReport, CircuitStateStore, Permit
from netra_resilience.circuit_breaker._windows import EMPTY_HEALTH, HealthInfo
from netra_resilience.telemetry import Severity, Telemetry

if TYPE_CHECKING:
    from collections.abc import Callable

    from netra_resilience.context import ResilienceContext
    from netra_resilience.outcome import Outcome

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_ISOLATED = CircuitState.ISOLATED

Changes = tuple[CircuitStateChange, ...]


class StateBackend(Protocol):
    """What the strategy needs from the place its state lives."""

    @property
    def closed(self) -> bool:
        """Closed as last known, without a clock read or a lazy transition (cheap)."""
        ...

    @property
    def state(self) -> CircuitState: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def health(self) -> HealthInfo: ...
    @property
    def last_failure_type(self) -> str | None: ...

    async def acquire(self, context: ResilienceContext) -> Permit | None:
        """A permit (admitted or not), or ``None`` when the state cannot be reached: the
        call then runs unrecorded (a breaker must not become the outage)."""
        ...

    async def record(
        self,
        permit: Permit,
        failed: bool,
        slow: bool,
        outcome: Outcome[Any],
        context: ResilienceContext,
    ) -> None: ...

    async def abandon(self, permit: Permit, context: ResilienceContext) -> None:
        """The admitted call never finished (cancelled): a half-open probe re-opens."""
        ...

    async def isolate(self) -> None: ...
    async def close(self) -> None: ...
    async def snapshot(self) -> CircuitSnapshot: ...
    def describe(self) -> str: ...


class LocalState:
    """In-process state: one :class:`CircuitController`; every step is synchronous."""

    __slots__ = ("_now", "controller")

    def __init__(self, controller: CircuitController, now: Callable[[], float]) -> None:
        self.controller = controller
        self._now = now

    @property
    def closed(self) -> bool:
        return self.controller.state is _CLOSED

    @property
    def state(self) -> CircuitState:
        """An elapsed break half-opens when read (Polly), with its event."""
        return self.controller.advance(self._now())

    @property
    def retry_after(self) -> float | None:
        return self.controller.retry_after(self._now())

    @property
    def health(self) -> HealthInfo:
        return self.controller.window.health(self._now())

    @property
    def last_failure_type(self) -> str | None:
        return self.controller.last_failure_type

    async def acquire(self, context: ResilienceContext) -> Permit:
        ctl = self.controller
        now = self._now()
        epoch = ctl.acquire(now, context)
        if epoch < 0:
            return Permit(False, ctl.state, ctl.epoch, ctl.retry_after(now))
        return Permit(True, ctl.state, epoch)

    async def record(
        self,
        permit: Permit,
        failed: bool,
        slow: bool,
        outcome: Outcome[Any],
        context: ResilienceContext,
    ) -> None:
        self.controller.record(
            permit.epoch, self._now(), failed, slow, context=context, outcome=outcome
        )

    async def abandon(self, permit: Permit, context: ResilienceContext) -> None:
        self.controller.abandon(permit.epoch, self._now(), context)

    async def isolate(self) -> None:
        self.controller.isolate(self._now())

    async def close(self) -> None:
        self.controller.close(self._now())

    async def snapshot(self) -> CircuitSnapshot:
        return self.controller.snapshot(self._now())

    def describe(self) -> str:
        return f"state={self.controller.state.value}"


class SharedState:
    """State in a :class:`CircuitStateStore` under ``key``, plus what this breaker last saw
    of it (for cheap reads: ``state``, ``retry_after`` and ``health`` never call the store).

    Built while its control is isolated, it is *held* isolated here, without a store step,
    until closed; ``isolate()`` isolates the shared circuit for every process.
    """

    __slots__ = (
        "_blocked_until", "_events", "_held", "_key", "_last_state", "_name", "_now", "_policy",
        "_store", "_telemetry", "_timing", "health", "last_failure_type",
    )  # fmt: skip

    def __init__(
        self,
        store: CircuitStateStore,
        *,
        key: str,
        name: str,
        policy: CircuitPolicy,
        timing: BreakTiming,
        events: StateEvents,
        telemetry: Telemetry,
        now: Callable[[], float],
        isolated: bool,
    ) -> None:
        self._store = store
        self._key = key
        self._name = name
        self._policy = policy
        self._timing = timing
        self._events = events
        self._telemetry = telemetry
        self._now = now
        self._held = isolated
        self._last_state = _ISOLATED if isolated else _CLOSED
        self._blocked_until = 0.0
        self.health: HealthInfo = EMPTY_HEALTH
        self.last_failure_type: str | None = None

    # -- reads (no store round trip) ---------------------------------------------------
    @property
    def _seen(self) -> CircuitState:
        """The last state seen; an open circuit whose break has elapsed reads half-open."""
        if self._last_state is _OPEN and self._now() >= self._blocked_until:
            return _HALF_OPEN
        return self._last_state

    @property
    def closed(self) -> bool:
        return not self._held and self._seen is _CLOSED

    @property
    def state(self) -> CircuitState:
        return _ISOLATED if self._held else self._seen

    @property
    def retry_after(self) -> float | None:
        if self._held or self._last_state is not _OPEN:
            return None
        return max(self._blocked_until - self._now(), 0.0)

    # -- steps -------------------------------------------------------------------------
    async def acquire(self, context: ResilienceContext) -> Permit | None:
        if self._held:
            return Permit(False, _ISOLATED, 0)
        try:
            permit = await self._store.acquire(self._key, self._policy)
            changes = await self._generate(permit.changes, context, None)
        except Exception:
            self._store_failed("acquire", context)
            return None
        self._saw(permit.state, changes, context, permit.retry_after)
        return permit

    async def record(
        self,
        permit: Permit,
        failed: bool,
        slow: bool,
        outcome: Outcome[Any],
        context: ResilienceContext,
    ) -> None:
        if failed:
            brk, failure_type = self._timing.static_for(outcome), failure_type_of(outcome)
            report = CallReport(True, slow, break_duration=brk, failure_type=failure_type)
        else:
            report = CallReport(False, slow, break_duration=self._policy.break_duration)
        await self._record(permit, report, context, outcome)

    async def abandon(self, permit: Permit, context: ResilienceContext) -> None:
        if permit.state is _HALF_OPEN:  # a closed-state call holds no slot: nothing to undo
            brk = self._policy.break_duration
            await self._record(permit, CallReport(False, abandoned=True, break_duration=brk))

    async def isolate(self) -> None:
        self._saw(_ISOLATED, await self._store.isolate(self._key, self._policy), None)

    async def close(self) -> None:
        self._held = False
        self._saw(_CLOSED, await self._store.close(self._key, self._policy), None)

    async def snapshot(self) -> CircuitSnapshot:
        """Read the shared state from the store (no transition is made)."""
        snapshot = await self._store.snapshot(self._key, self._policy)
        self._blocked_until = self._now() + (snapshot.retry_after or 0.0)
        self._last_state = snapshot.state
        self.health = snapshot.health
        self.last_failure_type = snapshot.last_failure_type
        return snapshot

    def describe(self) -> str:
        return f"key={self._key!r}, state={self.state.value}"

    # -- internals ---------------------------------------------------------------------
    async def _record(
        self,
        permit: Permit,
        report: CallReport,
        context: ResilienceContext | None = None,
        outcome: Outcome[Any] | None = None,
    ) -> None:
        try:
            changes = await self._store.record(self._key, self._policy, permit, report)
            changes = await self._generate(changes, context, outcome)
        except Exception:
            self._store_failed("record", context)
            return
        if changes:
            self._saw(changes[-1].new_state, changes, context)

    async def _generate(
        self, changes: Changes, context: ResilienceContext | None, outcome: Outcome[Any] | None
    ) -> Changes:
        """Run ``break_duration_generator`` for each opening; write it back (CAS on epoch)."""
        if not self._timing.has_generator or not changes:
            return changes
        result = []
        for change in changes:
            if change.new_state is _OPEN:
                health = change.health
                args = BreakDurationArgs(
                    health.failure_ratio, health.failures, change.half_open_attempts, context
                )
                seconds = self._timing.duration(args, outcome)
                if await self._store.set_break(self._key, change.epoch, seconds):
                    result.append(replace(change, break_duration=seconds))
                    continue
            result.append(change)
        return tuple(result)

    def _saw(
        self,
        state: CircuitState,
        changes: Changes,
        context: ResilienceContext | None,
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
        self._last_state = state
        if changes and self._events.active:
            for change in changes:
                self._events.publish(replace(change, dependency=self._name, context=context))

    def _store_failed(self, step: str, context: ResilienceContext | None) -> None:
        if self._telemetry.enabled:
            key = context.operation_key if context is not None else ""
            self._telemetry.emit("circuit_store_error", Severity.WARNING, key, step=step)
