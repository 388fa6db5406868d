"""The OpenTelemetry telemetry listener: strategy and health events as ``netra.*`` metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from netra_resilience.health import ServiceRegistry
from netra_resilience.integrations._metrics import (
    REJECTION_EVENTS,
    TRANSITION_EVENTS,
    breaker_states,
    criticality,
    event_error_type,
    health_statuses,
)
from netra_resilience.integrations.otel._gen_ai import meter_of
from netra_resilience.telemetry import TelemetryEvent


class OpenTelemetryListener:
    """Turns strategy and health events into ``netra.*`` metrics; see the module doc."""

    def __init__(
        self, *, meter_provider: Any = None, services: ServiceRegistry | None = None
    ) -> None:
        meter = meter_of(meter_provider)
        self._services = services
        self._events = meter.create_counter(
            "netra.events", unit="{event}", description="Resilience events"
        )
        self._rejections = meter.create_counter(
            "netra.rejections",
            unit="{call}",
            description="Calls refused or cut short by a strategy",
        )
        self._transitions = meter.create_counter(
            "netra.circuit_breaker.transitions",
            unit="{transition}",
            description="Breaker state changes",
        )
        meter.create_observable_gauge(
            "netra.circuit_breaker.state",
            callbacks=[self._observe_breakers],
            unit="1",
            description="1 for the breaker's current state, 0 for the others",
        )
        meter.create_observable_gauge(
            "netra.health.status",
            callbacks=[self._observe_health],
            unit="1",
            description="1 for the current health status (aggregate and per dependency)",
        )

    def observe(self, services: ServiceRegistry) -> None:
        """Report ``services``' breaker states and health (when the registry needs this listener
        at construction, bind it afterwards)."""
        self._services = services

    def on_event(self, event: TelemetryEvent) -> None:
        dependency = event.source.pipeline
        attributes: dict[str, str] = {
            "netra.event.name": event.name,
            "netra.event.severity": event.severity.name.lower(),
            "netra.dependency.name": dependency,
            "netra.strategy.name": event.source.strategy,
        }
        if event.operation_key:
            attributes["netra.operation.key"] = event.operation_key
        failure = event_error_type(event)
        if failure is not None:
            attributes[ERROR_TYPE] = failure
        self._events.add(1, attributes)
        kind = REJECTION_EVENTS.get(event.name)
        if kind is not None:
            self._rejections.add(
                1,
                {
                    "netra.dependency.name": dependency,
                    "netra.dependency.criticality": criticality(self._services, dependency),
                    "netra.rejection.kind": kind,
                },
            )
        if event.name in TRANSITION_EVENTS:
            self._transitions.add(
                1,
                {
                    "netra.dependency.name": dependency,
                    "netra.circuit_breaker.from_state": str(event.args.get("previous_state", "")),
                    "netra.circuit_breaker.to_state": str(event.args.get("state", "")),
                },
            )

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._services is None:
            return []
        return [
            Observation(
                value, {"netra.dependency.name": name, "netra.circuit_breaker.state": state}
            )
            for name, state, value in breaker_states(self._services)
        ]

    def _observe_health(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._services is None:
            return []
        observations = []
        for name, status, value in health_statuses(self._services):
            attributes = {"netra.health.status": status}
            if name:
                attributes["netra.dependency.name"] = name
            observations.append(Observation(value, attributes))
        return observations
