"""A strategy that records each call's duration in a Prometheus histogram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

from netra_resilience.context import ResilienceContext
from netra_resilience.integrations._metrics_common import error_type
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy

__all__ = ["PrometheusTimingOptions", "PrometheusTimingStrategy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrometheusTimingOptions:
    histogram: Histogram

    def create_strategy(self, build: BuildContext) -> PrometheusTimingStrategy:
        return PrometheusTimingStrategy(self.histogram, build)


class PrometheusTimingStrategy(Strategy):
    """Observes each call's duration with its dependency and ``error_type`` ("" on success)."""

    kind = "prometheus_timing"

    def __init__(self, histogram: Histogram, build: BuildContext) -> None:
        self._histogram = histogram
        self._clock = build.clock
        self._name = build.name

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        started = self._clock.monotonic()
        outcome = await callback(context, state)
        failure = error_type(outcome.exception) or ""
        self._histogram.labels(self._name, failure).observe(self._clock.monotonic() - started)
        return outcome
