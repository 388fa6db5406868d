"""Telemetry: events that strategies emit, the listener protocol, and a logging listener
that logs type names and whitelisted fields only (never messages or secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

from netra_resilience.clock import Clock


class Severity(IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


@dataclass(frozen=True, slots=True)
class TelemetrySource:
    pipeline: str
    instance: str
    strategy: str


@dataclass(frozen=True, slots=True)
class TelemetryEvent:
    """One event. ``name`` is a stable snake_case identifier (e.g. ``circuit_opened``)."""

    name: str
    severity: Severity
    source: TelemetrySource
    operation_key: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0


@runtime_checkable
class TelemetryListener(Protocol):
    def on_event(self, event: TelemetryEvent) -> None: ...


class CompositeListener:
    """Fans one event out to several listeners, in registration order."""

    __slots__ = ("listeners",)

    def __init__(self, listeners: Sequence[TelemetryListener]) -> None:
        self.listeners = tuple(listeners)

    def on_event(self, event: TelemetryEvent) -> None:
        for listener in self.listeners:
            try:
                listener.on_event(event)
            except Exception:  # a broken listener must never break the call it observes
                continue


class Telemetry:
    """What a strategy uses to emit: knows its source; costs one attribute check when off.

    Strategies check :attr:`enabled` before building event arguments, so a pipeline without a
    listener builds no dicts on its hot path.
    """

    __slots__ = ("_clock", "_listener", "enabled", "source")

    def __init__(
        self, listener: TelemetryListener | None, source: TelemetrySource, clock: Clock
    ) -> None:
        self._listener = listener
        self._clock = clock
        self.source = source
        self.enabled = listener is not None

    def emit(self, name: str, severity: Severity, operation_key: str = "", **args: Any) -> None:
        listener = self._listener
        if listener is None:
            return
        event = TelemetryEvent(
            name, severity, self.source, operation_key, args, self._clock.monotonic()
        )
        try:
            listener.on_event(event)
        except Exception:
            return


_LEVELS = {
    Severity.DEBUG: logging.DEBUG,
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
}

# Only these argument names are copied into log records: event args may carry exceptions or
# results, and only their *type* is safe to log (messages can hold upstream text or secrets).
_SAFE_ARGS = (
    "attempt",
    "delay",
    "duration",
    "state",
    "previous_state",
    "retry_after",
    "reason",
    "failure_ratio",
    "throughput",
    "timeout",
    "permits",
    "queue_length",
    "error_type",
    "breaker_state",
    "criticality",
    "dependency",
    "priority",
    "limit",
    "in_flight",
    "queued",
)


class LoggingListener:
    def __init__(
        self, logger: logging.Logger | None = None, *, min_severity: Severity = Severity.INFO
    ) -> None:
        self.logger = logger or logging.getLogger("netra_resilience")
        self.min_severity = min_severity

    def on_event(self, event: TelemetryEvent) -> None:
        if event.severity < self.min_severity:
            return
        level = _LEVELS.get(event.severity, logging.INFO)
        if not self.logger.isEnabledFor(level):
            return
        extra: dict[str, object] = {
            "netra_event": event.name,
            "dependency": event.source.pipeline,
            "instance": event.source.instance,
            "strategy": event.source.strategy,
            "operation_key": event.operation_key,
        }
        for key in _SAFE_ARGS:
            if key in event.args:
                extra[key] = event.args[key]
        exc = event.args.get("exception")
        if isinstance(exc, BaseException):
            extra["error_type"] = type(exc).__name__
        details = " ".join(f"{k}={extra[k]}" for k in _SAFE_ARGS if k in extra)
        self.logger.log(
            level,
            "%s %s/%s %s",
            event.name,
            event.source.pipeline,
            event.source.strategy,
            details,
            extra={"netra": extra},
        )


__all__ = [
    "CompositeListener",
    "LoggingListener",
    "Severity",
    "Telemetry",
    "TelemetryEvent",
    "TelemetryListener",
    "TelemetrySource",
]
