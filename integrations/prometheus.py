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
  ``dependency=""`` is the aggregate health);
* ``netra_dependency_info{dependency,criticality}`` (always 1: join on it to alert by
  criticality);
* ``netra_degraded_answers_total{dependency,reason}``: answers served in place of the
  dependency's (stale cache, canned reply, fallback...), counted by :meth:`timing`'s strategy;
* ``netra_budget_exhausted_total{dependency,outcome}``: calls that met an exhausted budget
  (``stepped_down`` to a cheaper alternate at the step-down point, or ``refused``);
* ``netra_hook_jobs_dropped_total`` and ``netra_hook_queue_jobs``: the observed engines' hook
  queues (:meth:`PrometheusListener.observe_engine`).

Alert rules over these series ship in ``prometheus_alerts.yml`` and a Grafana dashboard in
``grafana_dashboard.json``, next to this module (:func:`asset_path`).

Each worker process has its own breakers and health: with several uvicorn workers, scrape
each (gauges do not aggregate across processes in multiprocess mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from netra_resilience.integrations import missing_extra

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_asgi_app
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as error:  # the extra is not installed
    raise missing_extra("prometheus", error) from error

from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import Degradation, DegradationEntry, safe_token
from netra_resilience.engine import HooksLayer, ResilientEngine
from netra_resilience.exceptions import InvalidOptionsError
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
from netra_resilience.llm import BUDGET_EXHAUSTED
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import TelemetryEvent


class _StateCollector(Collector):
    """Breaker states and health, computed from the registry when Prometheus scrapes."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.services: ServiceRegistry | None = None
        self.engines: list[ResilientEngine] = []

    def collect(self) -> Iterator[Metric]:
        yield from self._hook_queues()
        services = self.services
        if services is None:
            return
        info = GaugeMetricFamily(
            f"{self.namespace}_dependency_info",
            "Registered dependencies with their criticality (always 1)",
            labels=["dependency", "criticality"],
        )
        for name in services:
            info.add_metric([name, criticality(services, name)], 1)
        yield info
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

    def _hook_queues(self) -> Iterator[Metric]:
        if not self.engines:
            return
        queues = [e.layer(HooksLayer).queue for e in self.engines]
        dropped = CounterMetricFamily(
            f"{self.namespace}_hook_jobs_dropped",
            "Hook jobs (analytics, monitoring...) dropped because their queue was full",
        )
        dropped.add_metric([], sum(q.dropped for q in queues))
        yield dropped
        waiting = GaugeMetricFamily(
            f"{self.namespace}_hook_queue_jobs", "Hook jobs waiting in the queues"
        )
        waiting.add_metric([], sum(len(q) for q in queues))
        yield waiting


@dataclass(frozen=True, slots=True, kw_only=True)
class PrometheusTimingOptions:
    histogram: Histogram
    degraded: Counter
    budget: Counter

    def create_strategy(self, build: BuildContext) -> PrometheusTimingStrategy:
        return PrometheusTimingStrategy(self.histogram, self.degraded, self.budget, build)


class PrometheusTimingStrategy(Strategy):
    """Observes each call's duration with its dependency and ``error_type`` ("" on success),
    and counts an answer that was served degraded (the latest mark of this call wins, as in
    the ``Netra-Degraded`` header)."""

    kind = "prometheus_timing"

    def __init__(
        self, histogram: Histogram, degraded: Counter, budget: Counter, build: BuildContext
    ) -> None:
        self._histogram = histogram
        self._degraded = degraded
        self._budget = budget
        self._clock = build.clock
        self._name = build.name
        self._dependency = safe_token(build.name)  # as degradation marks spell it

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        reasons: list[str] = []

        def on_mark(_: Degradation, entry: DegradationEntry) -> None:
            if entry.dependency == self._dependency:
                reasons.append(entry.reason)

        unsubscribe = context.degradation.subscribe(on_mark)
        started = self._clock.monotonic()
        try:
            outcome = await callback(context, state)
        finally:
            unsubscribe()
        failure = error_type(outcome.exception)
        self._histogram.labels(self._name, failure or "").observe(self._clock.monotonic() - started)
        if reasons and failure is None:
            self._degraded.labels(self._name, reasons[-1]).inc()
        if BUDGET_EXHAUSTED in reasons:  # answered by a cheaper step, or refused outright
            self._budget.labels(self._name, "refused" if failure else "stepped_down").inc()
        return outcome


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
        self._degraded = Counter(
            f"{namespace}_degraded_answers",
            "Answers served in place of the dependency's (stale cache, canned reply, ...)",
            ["dependency", "reason"],
            registry=self.registry,
        )
        self._budget = Counter(
            f"{namespace}_budget_exhausted",
            "Calls whose token/cost budget was exhausted (or at its step-down point): "
            "outcome=stepped_down (a cheaper alternate answered) or refused",
            ["dependency", "outcome"],
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

    def instrument(self, pipeline: Pipeline) -> Pipeline:
        """``pipeline`` with :meth:`timing`'s strategy outermost (use the result in its place):
        for pipelines built elsewhere, e.g. ``prom.instrument(resilience.llm())``. The
        strategies are the same objects, so health and breaker states still see them."""
        if any(isinstance(s, PrometheusTimingStrategy) for s in pipeline.strategies):
            raise InvalidOptionsError(
                "PrometheusListener.instrument", "pipeline", f"{pipeline.name!r} is already timed"
            )
        build = pipeline.build_context
        outer = self.timing().create_strategy(build)
        strategies = (outer, *pipeline.strategies)
        outer.on_pipeline_built(0, strategies)  # the wrapped ones keep their wiring
        return Pipeline(pipeline.name, pipeline.instance, strategies, build)

    def observe_engine(self, engine: ResilientEngine) -> None:
        """Report ``engine``'s hook queue (jobs waiting, jobs dropped); it needs hooks."""
        engine.layer(HooksLayer)  # LookupError now, not at the first scrape
        self._collector.engines.append(engine)

    def timing(self) -> PrometheusTimingOptions:
        """Options for a strategy that records call durations and degraded answers (add it
        outermost: it sees what the caller got)."""
        return PrometheusTimingOptions(
            histogram=self.duration, degraded=self._degraded, budget=self._budget
        )

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


Asset = Literal["prometheus_alerts.yml", "prometheus_alerts_test.yml", "grafana_dashboard.json"]


def asset_path(name: Asset) -> Path:
    """A file shipped next to this module: the alert rules, their promtool tests, the
    dashboard (``promtool check rules $(python -c ...)``, or copy it into your config)."""
    return Path(__file__).with_name(name)


def metrics_app(registry: CollectorRegistry | None = None) -> Any:
    """An ASGI app serving the exposition format; ``app.mount("/metrics", metrics_app(...))``."""
    return make_asgi_app(registry=registry if registry is not None else REGISTRY)


__all__ = [
    "PrometheusListener",
    "PrometheusTimingOptions",
    "asset_path",
    "metrics_app",
]
