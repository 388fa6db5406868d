"""``TimeoutStrategy``: own expiry -> ``TimeoutRejectedError``; a caller's cancel stays a cancel."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

from netra_resilience._types import to_seconds
from netra_resilience.clock import SystemClock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import TimeoutRejectedError
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.timeout._fusion import DEADLINE, Budget, find_partners
from netra_resilience.timeout._options import OnTimeoutArgs, TimeoutOptions, per_call_timeout
from netra_resilience.timeout._queue import DeadlineQueue, run_with_deadline_queue
from netra_resilience.timeout._timer import run_with_clock, run_with_loop_timer


class TimeoutStrategy(Strategy):
    """Cancels the rest of the pipeline after a timeout. See :class:`TimeoutOptions`.

    Three roles, fixed when the pipeline is built:

    * plain: arms one timer per call;
    * *fused total* (outside a retry whose attempts have a timeout): arms nothing, publishes
      the call's deadline as a :class:`Budget` for its two partners;
    * *attempt timeout of a fused total*: arms one timer at ``min(attempt, time left)``; when
      the total is what runs out it ends the call with the total's error.
    """

    __slots__ = (
        "_builds",
        "_clock",
        "_fused",
        "_generator",
        "_name",
        "_now",
        "_on_timeout",
        "_on_timeout_async",
        "_owner",
        "_queue",
        "_run",
        "_shared_timer",
        "_telemetry",
        "_timeout",
    )

    kind: ClassVar[str] = "timeout"
    may_block: ClassVar[bool] = False

    def __init__(self, options: TimeoutOptions, build: BuildContext) -> None:
        self._timeout = None if options.timeout is None else to_seconds(options.timeout)
        self._generator = options.timeout_generator
        hook = options.on_timeout
        self._on_timeout = hook
        self._on_timeout_async = inspect.iscoroutinefunction(hook) or (
            inspect.iscoroutinefunction(getattr(hook, "__call__", None))  # noqa: B004
        )
        self._clock = build.clock
        self._name = build.name
        self._telemetry = build.telemetry(self.kind)
        # The cheap loop timer is only correct for the real clock; any other clock (FakeClock)
        # keeps its own timeout() so that it stays in control of time.
        system = type(build.clock) is SystemClock
        self._run = run_with_loop_timer if system else run_with_clock
        # A fixed duration on the real clock shares one loop timer across calls (_queue.py).
        self._queue: DeadlineQueue | None = None
        self._shared_timer = system and self._generator is None
        self._now = build.clock.monotonic  # bound once, not looked up per call
        self._fused = False
        self._owner: TimeoutStrategy | None = None
        self._builds = 0

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def fused(self) -> bool:
        """True when this total timeout leaves its timer to the attempt timeout inside it."""
        return self._fused

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        if self._generator is None:
            seconds = self._timeout
        else:
            try:
                seconds = per_call_timeout(self._generator(context))
            except Exception as exc:
                return Outcome(None, exc)

        if self._fused:  # total timeout: publish the deadline, arm nothing
            budget = None
            if seconds is not None:
                budget = Budget(self, self._now() + seconds, seconds, self._name)
            token = DEADLINE.set(budget)
            try:
                outcome = await callback(context, state)
            finally:
                DEADLINE.reset(token)
            error = None if budget is None else budget.error
            if error is not None and outcome.exception is error:
                return await self._report(context, error.timeout or 0.0, outcome)
            return outcome

        owner = self._owner
        if owner is not None:  # attempt timeout: also enforce the fused total's deadline
            budget = DEADLINE.get()
            if budget is not None and budget.owner is owner:
                remaining = budget.deadline - self._now()
                if remaining <= 0:
                    return Outcome(None, budget.expire())
                if seconds is None or remaining < seconds:
                    bounded = await self._run(self._clock, remaining, callback, context, state)
                    return Outcome(None, budget.expire()) if bounded is None else bounded

        if seconds is None:
            return await callback(context, state)
        if self._shared_timer:
            loop = asyncio.get_running_loop()
            queue = self._queue
            if queue is None or queue.loop is not loop:
                queue = self._queue = DeadlineQueue(loop)
            timed = await run_with_deadline_queue(queue, seconds, callback, context, state)
        else:
            timed = await self._run(self._clock, seconds, callback, context, state)
        if timed is None:
            error = TimeoutRejectedError(
                f"timed out after {seconds:g}s", timeout=seconds, dependency=self._name
            )
            return await self._report(context, seconds, Outcome(None, error))
        return timed

    async def _report(
        self, context: ResilienceContext, seconds: float, outcome: Outcome[Any]
    ) -> Outcome[Any]:
        """Our own expiry: mark the degradation, emit ``timeout``, run the hook."""
        context.degradation.mark(self._name, DegradationReason.TIMEOUT)
        telemetry = self._telemetry
        if telemetry.enabled:
            telemetry.emit("timeout", Severity.ERROR, context.operation_key, timeout=seconds)
        hook = self._on_timeout
        if hook is not None:
            try:  # like Polly: a failing hook fails the call, it is not silently dropped
                result = hook(OnTimeoutArgs(context, seconds))
                if self._on_timeout_async or inspect.isawaitable(result):
                    await result  # type: ignore[misc]
            except Exception as exc:
                return Outcome(None, exc)
        return outcome

    # -- build-time wiring ------------------------------------------------------------
    def on_pipeline_built(self, position: int, strategies: Sequence[Strategy]) -> None:
        self._builds += 1
        if self._builds > 1:
            # The same instance in a second pipeline: the shape we fused may no longer hold,
            # so fall back to plain timers (always correct).
            self._unfuse()
            if self._owner is not None:
                self._owner._unfuse()
            return
        if self._owner is not None or (self._timeout is None and self._generator is None):
            return
        from netra_resilience.retry._strategy import (
            RetryStrategy,  # lazy: retry imports this package
        )

        retry, inner = find_partners(position, strategies, RetryStrategy)
        if not isinstance(retry, RetryStrategy) or not isinstance(inner, TimeoutStrategy):
            return
        if not (inner._builds == 0 and inner._owner is None and not inner._fused):
            return
        if not retry._bind_deadline(self):
            return
        inner._owner = self
        self._fused = True

    def _unfuse(self) -> None:
        # Partners keep pointing at us: they only act on budgets we publish, and we publish
        # none from now on (calls already running keep theirs and stay bounded).
        self._fused = False

    def __repr__(self) -> str:
        role = "total, fused" if self._fused else "attempt, fused" if self._owner else "plain"
        return f"TimeoutStrategy(timeout={self._timeout!r}, {role})"
