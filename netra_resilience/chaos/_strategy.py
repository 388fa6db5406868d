"""``ChaosStrategy``: injects the configured faults; with none configured, just calls through."""

from __future__ import annotations

from typing import Any, ClassVar

from netra_resilience.chaos._control import ChaosControl, Faults
from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity


class ChaosStrategy(Strategy):
    """Fault injection in the spirit of Polly's Simmy: latency first, then exception or result.

    Each fault fires when ``random() < rate``. Latency sleeps on the pipeline's clock (so a
    ``FakeClock`` test sees it and a caller's cancel interrupts it). Chaos marks no degradation
    itself: the strategies that react to the injected fault do.
    """

    __slots__ = ("_clock", "_control", "_dependency", "_random", "_telemetry")

    kind: ClassVar[str] = "chaos"

    def __init__(self, control: ChaosControl, dependency: str, build: BuildContext) -> None:
        self._control = control
        self._dependency = dependency
        self._clock = build.clock
        self._random = build.random
        self._telemetry = build.telemetry(self.kind)

    @property
    def dependency(self) -> str:
        return self._dependency

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        faults = self._control._active.get(self._dependency)
        if faults is None:
            return await callback(context, state)
        return await self._inject(faults, callback, context, state)

    async def _inject(
        self, faults: Faults, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        random = self._random
        latency = faults.latency
        if latency is not None and random() < latency.rate:
            self._emit("latency", context)
            await self._clock.sleep(latency.seconds)
        exception = faults.exception
        if exception is not None and random() < exception.rate:
            self._emit("exception", context)
            error = exception.make()
            if not isinstance(error, BaseException):
                error = TypeError(f"chaos exception factory returned {type(error).__name__}")
            if not isinstance(error, Exception):
                raise error  # CancelledError & co. keep their meaning: they propagate
            return Outcome(None, error)
        result = faults.result
        if result is not None and random() < result.rate:
            self._emit("result", context)
            return Outcome(result.make())
        return await callback(context, state)

    def _emit(self, fault: str, context: ResilienceContext) -> None:
        if self._telemetry.enabled:
            self._telemetry.emit(
                "chaos_injected",
                Severity.WARNING,
                context.operation_key,
                reason=fault,
                dependency=self._dependency,
            )
