"""Adds a dependency's criticality (and breaker state) to the events its pipeline emits.

Structured logs, metrics and traces then carry ``dependency``, ``criticality``,
``breaker_state`` and ``error_type`` without every strategy knowing about the registry
(the ``LoggingListener`` copies exactly these fields into ``extra``). It costs nothing when
no listener is configured: the registry only wraps a listener that exists.
"""

from __future__ import annotations

from dataclasses import replace

from netra_resilience.health._status import Criticality
from netra_resilience.telemetry import TelemetryEvent, TelemetryListener


class DependencyFields:
    """A listener wrapper: forwards each event with ``criticality`` (+ ``breaker_state``)."""

    __slots__ = ("criticality", "listener")

    def __init__(self, listener: TelemetryListener, criticality: Criticality) -> None:
        self.listener = listener
        self.criticality = criticality.value

    def on_event(self, event: TelemetryEvent) -> None:
        extra = {"criticality": self.criticality}
        if event.source.strategy == "circuit_breaker" and "state" in event.args:
            extra["breaker_state"] = str(event.args["state"])
        self.listener.on_event(replace(event, args={**event.args, **extra}))
