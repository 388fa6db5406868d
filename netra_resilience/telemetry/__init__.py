"""Telemetry: events, listeners and a logging listener."""

from netra_resilience.telemetry._events import Severity, TelemetryEvent, TelemetrySource
from netra_resilience.telemetry._listener import CompositeListener, Telemetry, TelemetryListener
from netra_resilience.telemetry.logging import LoggingListener

__all__ = [
    "CompositeListener",
    "LoggingListener",
    "Severity",
    "Telemetry",
    "TelemetryEvent",
    "TelemetryListener",
    "TelemetrySource",
]
