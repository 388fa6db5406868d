"""Breaker-state and health gauges, read from the service registry at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netra_resilience.health import ServiceRegistry
from netra_resilience.integrations._metrics_common import breaker_states, health_statuses

__all__ = ["_StateCollector"]


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
