"""A listener that writes events to stdlib logging with structured ``extra`` fields."""

from __future__ import annotations

import logging

from netra_resilience.telemetry._events import Severity, TelemetryEvent

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
