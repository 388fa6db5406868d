"""Telemetry: events, listeners and a logging listener."""

from ._events import Severity, TelemetryEvent, TelemetrySource
from ._listener import CompositeListener, Telemetry, TelemetryListener
from .logging import LoggingListener

__all__ = [
    "CompositeListener",
    "LoggingListener",
    "Severity",
    "Telemetry",
    "TelemetryEvent",
    "TelemetryListener",
    "TelemetrySource",
]
