"""``PipelineBuilder``: add strategies outermost-first, then ``build()`` once."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.pipeline import Pipeline
from netra_resilience.strategy import BuildContext, Strategy, StrategyOptions
from netra_resilience.telemetry import TelemetryListener

if TYPE_CHECKING:
    from netra_resilience.bulkhead import BulkheadOptions
    from netra_resilience.cache import CacheOptions
    from netra_resilience.chaos import ChaosOptions
    from netra_resilience.circuit_breaker import CircuitBreakerOptions
    from netra_resilience.fallback import FallbackOptions
    from netra_resilience.rate_limiter import RateLimiterOptions
    from netra_resilience.retry import RetryOptions
    from netra_resilience.timeout import TimeoutOptions


class PipelineBuilder:
    """Collects strategy options; :meth:`build` turns them into an immutable :class:`Pipeline`.

    The first strategy added is the outermost. Options objects are validated when they are
    constructed, so an invalid value fails before the builder ever sees it.
    """

    def __init__(
        self,
        name: str = "pipeline",
        *,
        instance: str = "",
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("PipelineBuilder.name must be a non-empty string")
        self._build = BuildContext(
            name=name,
            instance=instance,
            clock=clock or SYSTEM_CLOCK,
            random=random or _random.Random().random,
            listener=telemetry,
        )
        self._items: list[StrategyOptions | Strategy] = []
        self._used = False

    @property
    def name(self) -> str:
        return self._build.name

    def add(self, options: StrategyOptions) -> Self:
        """Add any options object that implements ``create_strategy(build)``."""
        if not isinstance(options, StrategyOptions):
            raise TypeError(f"{type(options).__name__} does not implement create_strategy()")
        self._items.append(options)
        return self

    def add_strategy(self, strategy: Strategy) -> Self:
        """Add an already-built strategy instance (e.g. one breaker shared by two pipelines)."""
        if not isinstance(strategy, Strategy):
            raise TypeError(f"{type(strategy).__name__} is not a Strategy")
        self._items.append(strategy)
        return self

    def add_timeout(self, options: TimeoutOptions) -> Self:
        return self.add(options)

    def add_retry(self, options: RetryOptions) -> Self:
        return self.add(options)

    def add_circuit_breaker(self, options: CircuitBreakerOptions) -> Self:
        return self.add(options)

    def add_rate_limiter(self, options: RateLimiterOptions) -> Self:
        return self.add(options)

    def add_bulkhead(self, options: BulkheadOptions) -> Self:
        return self.add(options)

    def add_fallback(self, options: FallbackOptions) -> Self:
        return self.add(options)

    def add_cache(self, options: CacheOptions) -> Self:
        return self.add(options)

    def add_chaos(self, options: ChaosOptions) -> Self:
        return self.add(options)

    def build(self) -> Pipeline:
        if self._used:
            raise RuntimeError("PipelineBuilder.build() may be called only once")
        self._used = True
        strategies = tuple(
            item if isinstance(item, Strategy) else item.create_strategy(self._build)
            for item in self._items
        )
        for position, strategy in enumerate(strategies):
            strategy.on_pipeline_built(position, strategies)
        return Pipeline(self._build.name, self._build.instance, strategies)
