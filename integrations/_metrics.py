"""What the OpenTelemetry and Prometheus adapters share: event classification, safe values.

Attribute values are bounded: dependency names come from the registry, event and state names
from the library, error types are exception *type* names (never messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from netra_resilience.exceptions import (
    AdmissionRejectedError,
    BrokenCircuitError,
    BulkheadRejectedError,
    IsolatedCircuitError,
    RateLimitRejectedError,
    TimeoutRejectedError,
)
from netra_resilience.health import ServiceRegistry
from netra_resilience.telemetry import TelemetryEvent

REJECTION_EVENTS = {
    "circuit_rejected": "circuit_open",
    "rate_limiter_rejected": "rate_limited",
    "bulkhead_rejected": "bulkhead_full",
    "admission_shed": "shed",
    "timeout": "timeout",
}
"""Event name -> rejection kind (the call was refused or cut short by a strategy)."""

TRANSITION_EVENTS = frozenset({"circuit_opened", "circuit_half_opened", "circuit_closed"})
CIRCUIT_STATES = ("closed", "open", "half_open", "isolated")
HEALTH_STATUSES = ("pass", "warn", "fail")


def error_type(exc: BaseException | None) -> str | None:
    """A low-cardinality ``error.type``: our rejections by kind, others by type name."""
    if exc is None:
        return None
    if isinstance(exc, IsolatedCircuitError):
        return "circuit_isolated"
    if isinstance(exc, BrokenCircuitError):
        return "circuit_open"
    if isinstance(exc, TimeoutRejectedError):
        return "timeout"
    if isinstance(exc, RateLimitRejectedError):
        return "rate_limited"
    if isinstance(exc, BulkheadRejectedError):
        return "bulkhead_full"
    if isinstance(exc, AdmissionRejectedError):
        return "shed"
    return type(exc).__qualname__


def event_error_type(event: TelemetryEvent) -> str | None:
    """The error type an event carries (as a type name string or an exception), if any."""
    for key in ("error_type", "exception"):
        value = event.args.get(key)
        if isinstance(value, BaseException):
            return type(value).__qualname__
        if isinstance(value, str) and value.isidentifier():
            return value
    return None


def criticality(services: ServiceRegistry | None, dependency: str) -> str:
    if services is None:
        return ""
    level = services.criticality_of(dependency)
    return level.value if level is not None else ""


def breaker_states(services: ServiceRegistry) -> Iterator[tuple[str, str, int]]:
    """``(dependency, state, 1|0)`` for every breaker of the registry, one row per state."""
    for name in services:
        breaker = services.breaker(name)
        if breaker is None:
            continue
        current = str(breaker.state)
        for state in CIRCUIT_STATES:
            yield name, state, int(state == current)


def health_statuses(services: ServiceRegistry) -> Iterator[tuple[str, str, int]]:
    """``(dependency or "", status, 1|0)``: the aggregate (``""``) then every dependency."""
    report = services.monitor.report()
    rows: list[tuple[str, Any]] = [("", report.status)]
    rows.extend((c.name, c.status) for c in report.components)
    for name, current in rows:
        for status in HEALTH_STATUSES:
            yield name, status, int(status == current.value)
