"""Prometheus exposition with ``prometheus_client`` (no OpenTelemetry needed).

::

    prom = PrometheusListener(services=registry)          # or registry=CollectorRegistry()
    registry = ServiceRegistry([...], telemetry=prom)     # then prom.observe(registry)
    builder.add(prom.timing())                            # outermost: call durations
    app.mount("/metrics", metrics_app(prom.registry))

Series (names follow Prometheus practice: base units, ``_total`` on counters):

* ``netra_events_total{dependency,strategy,event,severity,error_type}``
* ``netra_rejections_total{dependency,criticality,kind}`` (circuit_open, rate_limited, ...)
* ``netra_circuit_breaker_transitions_total{dependency,from_state,to_state}``
* ``netra_dependency_operation_duration_seconds{dependency,error_type}`` (histogram)
* ``netra_circuit_breaker_state{dependency,state}`` and ``netra_health_status{dependency,status}``
  (1 for the current value, 0 for the others; read from the registry at scrape time;
  ``dependency=""`` is the aggregate health).

Each worker process has its own breakers and health: with several uvicorn workers, scrape
each (gauges do not aggregate across processes in multiprocess mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netra_resilience.integrations import missing_extra

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_asgi_app
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as error:  # the extra is not installed
    raise missing_extra("prometheus", error) from error

from netra_resilience.context import ResilienceContext
from netra_resilience.health import ServiceRegistry
from netra_resilience.integrations._metrics import (
    REJECTION_EVENTS,
    TRANSITION_EVENTS,
    breaker_states,
    criticality,
    error_type,
    event_error_type,
    health_statuses,
)
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import TelemetryEvent


class _StateCollector(Collector):
    """Breaker states and health, computed from the registry when Prometheus scrapes."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.services: ServiceRegistry | None = None

    def collect(self) -> Iterator[Metric]:
        services = self.services
        if services is None:
            return
        breakers = GaugeMetricFamily(
            f"{self.namespace}_circuit_breaker_state",
            "1 for the breaker's current state, 0 for the others",
            labels=["dependency", "state"],
        )
        for name, state, value in breaker_states(services):
            breakers.add_metric([name, state], value)
        yield breakers
        health = GaugeMetricFamily(
            f"{self.namespace}_health_status",
            "1 for the current health status; dependency='' is the aggregate",
            labels=["dependency", "status"],
        )
        for name, status, value in health_statuses(services):
            health.add_metric([name, status], value)
        yield health


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


# The strategy class lived here before the split; keep it importable from this module.


DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


class PrometheusListener:
    """A telemetry listener that keeps Prometheus metrics; see the module doc.

    ``registry`` defaults to ``prometheus_client.REGISTRY`` (what a default ``/metrics``
    serves); create one listener per collector registry.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        services: ServiceRegistry | None = None,
        namespace: str = "netra",
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self._services = services
        self._events = Counter(
            f"{namespace}_events",
            "Resilience events",
            ["dependency", "strategy", "event", "severity", "error_type"],
            registry=self.registry,
        )
        self._rejections = Counter(
            f"{namespace}_rejections",
            "Calls refused or cut short by a strategy",
            ["dependency", "criticality", "kind"],
            registry=self.registry,
        )
        self._transitions = Counter(
            f"{namespace}_circuit_breaker_transitions",
            "Circuit breaker state changes",
            ["dependency", "from_state", "to_state"],
            registry=self.registry,
        )
        self.duration = Histogram(
            f"{namespace}_dependency_operation_duration_seconds",
            "Duration of calls through the dependency's pipeline",
            ["dependency", "error_type"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._collector = _StateCollector(namespace)
        self.registry.register(self._collector)
        if services is not None:
            self.observe(services)

    def observe(self, services: ServiceRegistry) -> None:
        """Report ``services``' breaker states, health and dependency criticalities."""
        self._services = services
        self._collector.services = services

    def timing(self) -> PrometheusTimingOptions:
        """Options for a strategy that records call durations (add it outermost)."""
        return PrometheusTimingOptions(histogram=self.duration)

    def on_event(self, event: TelemetryEvent) -> None:
        dependency = event.source.pipeline
        self._events.labels(
            dependency,
            event.source.strategy,
            event.name,
            event.severity.name.lower(),
            event_error_type(event) or "",
        ).inc()
        kind = REJECTION_EVENTS.get(event.name)
        if kind is not None:
            self._rejections.labels(dependency, criticality(self._services, dependency), kind).inc()
        if event.name in TRANSITION_EVENTS:
            previous = str(event.args.get("previous_state", ""))
            self._transitions.labels(dependency, previous, str(event.args.get("state", ""))).inc()


def metrics_app(registry: CollectorRegistry | None = None) -> Any:
    """An ASGI app serving the exposition format; ``app.mount("/metrics", metrics_app(...))``."""
    return make_asgi_app(registry=registry if registry is not None else REGISTRY)

__all__ = [
    "PrometheusListener",
    "PrometheusTimingOptions",
    "metrics_app",
]
