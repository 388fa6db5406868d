"""Criticality and health status, and the one rule that combines them.

The rule (anchors/conventions.md §0, §3): a failed ``critical`` dependency fails the service;
a failed ``important`` or ``optional`` one only degrades it (``warn``); a ``monitoring``
dependency is reported but never changes the aggregate.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from netra_resilience.exceptions import InvalidOptionsError


class Criticality(StrEnum):
    """How much the service depends on a dependency."""

    CRITICAL = "critical"
    """Cannot serve without it (PostgreSQL, auth): a failure fails the service and readiness."""
    IMPORTANT = "important"
    """Serves degraded without it (the LLM behind a cache, Redis): a failure is ``warn``."""
    OPTIONAL = "optional"
    """Nice to have (analytics): a failure is ``warn``."""
    MONITORING = "monitoring"
    """Observability sinks: shown in the detail, never changes the aggregate."""


class HealthStatus(StrEnum):
    """The IETF health-check vocabulary (draft-inadarei-api-health-check-06)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {HealthStatus.PASS: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}
_CRITICALITIES = ", ".join(c.value for c in Criticality)


def parse_criticality(value: object, owner: str, field: str) -> Criticality:
    """Accept a :class:`Criticality` or its name (any case); name the field when it is wrong."""
    if isinstance(value, Criticality):
        return value
    if isinstance(value, str):
        try:
            return Criticality(value.strip().lower())
        except ValueError:
            pass
    raise InvalidOptionsError(owner, field, f"must be one of {_CRITICALITIES}, got {value!r}")


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    result = HealthStatus.PASS
    for status in statuses:
        if _RANK[status] > _RANK[result]:
            result = status
    return result


def weighted(criticality: Criticality, status: HealthStatus) -> HealthStatus:
    """What one dependency's status contributes to the service's status."""
    if criticality is Criticality.MONITORING:
        return HealthStatus.PASS
    if status is HealthStatus.FAIL and criticality is not Criticality.CRITICAL:
        return HealthStatus.WARN
    return status
