"""``HooksMiddleware``: runs every registered hook behind its own breaker and timeout."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.engine._emitter import RunEvents
from netra_resilience.engine._hook_queue import HookQueue
from netra_resilience.engine._hooks import Hook, HookFn, as_hooks
from netra_resilience.engine._middleware import EngineMiddleware
from netra_resilience.engine._types import Engine, RunRequest
from netra_resilience.exceptions import BrokenCircuitError, TimeoutRejectedError
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions
from netra_resilience.validation import Seconds, to_seconds

_BLOCKED = (CircuitState.OPEN, CircuitState.ISOLATED)


class _Registered:
    """A hook with its pipeline and breaker, built once per stack."""

    __slots__ = ("breaker", "hook", "pipeline")

    def __init__(self, hook: Hook, pipeline: Pipeline) -> None:
        self.hook = hook
        self.pipeline = pipeline
        breaker = pipeline.find(CircuitBreakerStrategy)
        assert breaker is not None  # the middleware always builds one
        self.breaker = breaker

    def is_open(self) -> bool:
        return self.breaker.state in _BLOCKED

    async def call(self, event: Mapping[str, Any], context: ResilienceContext) -> bool:
        """Run the hook; never raises. Marks the run's degradation and returns False on failure."""
        outcome = await self.pipeline.execute_outcome(self.hook.fn, event, context=context)
        exc = outcome.exception
        if exc is None:
            return True
        if isinstance(exc, BrokenCircuitError):
            context.degradation.mark(self.hook.name, DegradationReason.SKIPPED)
        elif not isinstance(exc, TimeoutRejectedError):  # the timeout strategy marked it
            context.degradation.mark(self.hook.name, DegradationReason.ERROR)
        return False


class _RunHooks:
    """One run's view of the hooks (an :class:`EventObserver`)."""

    __slots__ = ("_context", "_failed", "_owner")

    def __init__(self, owner: HooksMiddleware, context: ResilienceContext) -> None:
        self._owner = owner
        self._context = context
        self._failed: set[str] = set()

    def _skip(self, hook: _Registered) -> bool:
        if hook.hook.name in self._failed or hook.is_open():
            self._context.degradation.mark(hook.hook.name, DegradationReason.SKIPPED)
            return True
        return False

    def notify(self, event: Mapping[str, Any]) -> None:
        event_type = event["type"]
        view: Mapping[str, Any] | None = None
        for hook in self._owner.background:
            if hook.hook.wants(event_type) and not self._skip(hook):
                view = view or MappingProxyType(event)
                self._owner.queue.offer(self._run, hook, view)

    async def _run(self, hook: _Registered, event: Mapping[str, Any]) -> None:
        """A background job: skipped if the breaker opened (or the hook failed) meanwhile."""
        if not self._skip(hook) and not await hook.call(event, self._context):
            self._failed.add(hook.hook.name)

    async def observe(self, event: Mapping[str, Any]) -> None:
        event_type = event["type"]
        for hook in self._owner.inline:
            if (
                hook.hook.wants(event_type)
                and not self._skip(hook)
                and not await hook.call(MappingProxyType(event), self._context)
            ):
                self._failed.add(hook.hook.name)


class HooksMiddleware(EngineMiddleware):
    """``Middleware(HooksMiddleware, hooks=[Hook("analytics", send)], clock=clock)``.

    Hooks see every event of every run (filtered by ``Hook.events``). Background hooks share
    one bounded :class:`HookQueue`; ``aclose()`` drains it (at most ``drain_timeout``).
    """

    def __init__(
        self,
        app: Engine,
        *,
        hooks: Mapping[str, HookFn] | Collection[Hook] = (),
        clock: Clock | None = None,
        queue_size: int = 1000,
        workers: int = 2,
        drain_timeout: Seconds = 5.0,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        super().__init__(app)
        self.clock = clock or SYSTEM_CLOCK
        self.queue = HookQueue(max_size=queue_size, workers=workers, clock=self.clock)
        self.drain_timeout = to_seconds(drain_timeout)
        self.hooks: dict[str, _Registered] = {}
        for hook in as_hooks(hooks):
            assert hook.breaker is not None
            pipeline = (
                PipelineBuilder(hook.name, clock=self.clock, telemetry=telemetry)
                .add_circuit_breaker(hook.breaker)
                .add_timeout(TimeoutOptions(timeout=hook.timeout))
                .build()
            )
            self.hooks[hook.name] = _Registered(hook, pipeline)
        self.background = tuple(h for h in self.hooks.values() if h.hook.background)
        self.inline = tuple(h for h in self.hooks.values() if not h.hook.background)

    def breaker(self, name: str) -> CircuitBreakerStrategy:
        """The named hook's breaker (for health, or to isolate a hook by hand)."""
        return self.hooks[name].breaker

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        if self.hooks:
            events.add_observer(_RunHooks(self, events.context))
        return await self.app(request, events)

    async def aclose(self) -> None:
        await self.queue.aclose(self.drain_timeout)
