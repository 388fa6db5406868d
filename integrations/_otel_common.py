"""What every OpenTelemetry instrument here shares: the scope name and how to get a meter."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics

SCOPE = "netra_resilience"


def meter_of(provider: Any) -> metrics.Meter:
    """The ``netra_resilience`` meter of ``provider`` (the global one when ``None``)."""
    return metrics.get_meter(SCOPE, meter_provider=provider)
