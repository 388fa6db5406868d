"""The strategy contract: one async method that turns a callback into an :class:`Outcome`."""

from __future__ import annotations

import random as _random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.telemetry import Telemetry, TelemetryListener, TelemetrySource

Callback = Callable[[ResilienceContext, Any], Awaitable[Outcome[Any]]]
"""The next step of a pipeline: ``await callback(context, state) -> Outcome``; never raises
(except ``BaseException`` such as ``CancelledError``, which always propagates)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildContext:
    """What a strategy receives when its pipeline is built: name, clock, randomness, telemetry."""

    name: str = "pipeline"
    instance: str = ""
    clock: Clock = SYSTEM_CLOCK
    random: Callable[[], float] = field(default_factory=lambda: _random.Random().random)
    listener: TelemetryListener | None = None

    def telemetry(self, strategy: str) -> Telemetry:
        return Telemetry(
            self.listener, TelemetrySource(self.name, self.instance, strategy), self.clock
        )


class Strategy(ABC):
    """A resilience strategy. ``execute`` must not raise: it returns an outcome.

    ``BaseException``s that are not ``Exception`` (``CancelledError`` above all) are the one
    exception to that rule: they propagate, and a strategy releases whatever it holds in a
    ``finally`` block.
    """

    __slots__ = ()

    kind: ClassVar[str] = "strategy"

    @abstractmethod
    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]: ...

    def on_pipeline_built(self, position: int, strategies: Sequence[Strategy]) -> None:
        """Called once after the pipeline is assembled (outermost first); default: nothing.

        Lets a strategy decide at build time what it needs, e.g. a total timeout that an inner
        attempt timeout can enforce with a single timer.
        """
        return None


@runtime_checkable
class StrategyOptions(Protocol):
    """Options objects are frozen, validated at construction, and create their strategy."""

    def create_strategy(self, build: BuildContext) -> Strategy: ...
