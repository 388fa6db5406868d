"""``SharedCircuitBreakerStrategy``: a breaker whose state lives in a :class:`CircuitStateStore`.

Each call is two atomic store steps (``acquire``, ``record``). The transitions those steps
make come back here and are published to this breaker's telemetry, callbacks and listeners;
transitions made by *other* processes are not seen as events. ``state``/``retry_after``/
``health`` show what this process last saw (``await refresh()`` reads the store). A failing
store lets the call through unrecorded: a Redis outage must not become an outage of the
dependency the breaker protects.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netra_resilience.circuit_breaker._base import BreakerBase
from netra_resilience.circuit_breaker._controller import failure_type_of
from netra_resilience.circuit_breaker._events import CircuitStateChange
from netra_resilience.circuit_breaker._health import HealthInfo
from netra_resilience.circuit_breaker._mirror import SharedView
from netra_resilience.circuit_breaker._options import BreakDurationArgs
from netra_resilience.circuit_breaker._state import CircuitState
from netra_resilience.circuit_breaker._store import (
    CallReport,
    CircuitSnapshot,
    CircuitStateStore,
    Permit,
)
from netra_resilience.circuit_breaker._strategy import CircuitBreakerStrategy
from netra_resilience.outcome import Outcome
from netra_resilience.telemetry import Severity

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._options import CircuitBreakerOptions
    from netra_resilience.context import ResilienceContext
    from netra_resilience.strategy import BuildContext, Callback

Changes = tuple[CircuitStateChange, ...]


class SharedCircuitBreakerStrategy(CircuitBreakerStrategy):
    __slots__ = ("_held", "_key", "_policy", "_store", "_view")

    def __init__(self, options: CircuitBreakerOptions, build: BuildContext) -> None:
        BreakerBase.__init__(self, options, build)  # no in-process controller
        # Built while its control is isolated: held isolated here, without a store step,
        # until closed. isolate() isolates the shared circuit for every process.
        self._held = self._start_isolated
        assert options.store is not None
        self._store: CircuitStateStore = options.store
        self._policy = options.policy()
        self._key = f"{build.name}/{build.instance}" if build.instance else build.name
        first = CircuitState.ISOLATED if self._held else CircuitState.CLOSED
        self._view = SharedView(self._now, first)
        if options.state_provider is not None:
            options.state_provider._bind(self)

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        if self._held:
            return self._reject(None, True, context)
        try:
            permit = await self._store.acquire(self._key, self._policy)
            changes = await self._generate(permit.changes, context, None)
        except Exception:
            self._store_failed("acquire", context)
            return await callback(context, state)
        self._saw(permit.state, changes, context, permit.retry_after)
        if not permit.admitted:
            isolated = permit.state is CircuitState.ISOLATED
            return self._reject(permit.retry_after, isolated, context)
        start = self._now()
        finished = False
        try:
            outcome = await callback(context, state)
            finished = True
        finally:
            if not finished and permit.state is CircuitState.HALF_OPEN:
                brk = self._policy.break_duration
                await self._record(permit, CallReport(False, abandoned=True, break_duration=brk))
        slow = self._slow is not None and self._now() - start > self._slow
        if self._failed(outcome):
            brk, failure_type = self._timing.static_for(outcome), failure_type_of(outcome)
            report = CallReport(True, slow, break_duration=brk, failure_type=failure_type)
        else:
            report = CallReport(False, slow, break_duration=self._policy.break_duration)
        await self._record(permit, report, context, outcome)
        return outcome

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
            if change.new_state is CircuitState.OPEN:
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
        self._view.saw(state, changes, retry_after)
        if changes and self._events.active:
            for change in changes:
                self._events.publish(replace(change, dependency=self._name, context=context))

    def _store_failed(self, step: str, context: ResilienceContext | None) -> None:
        if self._telemetry.enabled:
            key = context.operation_key if context is not None else ""
            self._telemetry.emit("circuit_store_error", Severity.WARNING, key, step=step)

    async def refresh(self) -> CircuitSnapshot:
        """Read the shared state from the store (no transition is made)."""
        snapshot = await self._store.snapshot(self._key, self._policy)
        self._view.saw_snapshot(snapshot)
        return snapshot

    @property
    def state(self) -> CircuitState:
        return CircuitState.ISOLATED if self._held else self._view.state

    @property
    def closed(self) -> bool:
        return not self._held and self._view.state is CircuitState.CLOSED

    @property
    def retry_after(self) -> float | None:
        return None if self._held else self._view.retry_after

    @property
    def health(self) -> HealthInfo:
        return self._view.health

    @property
    def last_failure_type(self) -> str | None:
        return self._view.last_failure_type

    async def isolate(self) -> None:
        self._saw(CircuitState.ISOLATED, await self._store.isolate(self._key, self._policy), None)

    async def close(self) -> None:
        self._held = False
        self._saw(CircuitState.CLOSED, await self._store.close(self._key, self._policy), None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, key={self._key!r})"
