"""What a health check's result sets off: a status-change event and breaker isolation.

Recovery and the breaker: with ``isolate_on_failure`` (default), a failing check isolates the
dependency's breaker, so calls fail fast into fallbacks (or a 503) instead of each waiting
for its own timeout; the first passing check afterwards closes it again. The monitor closes
only breakers it isolated itself (it cannot tell an operator who closes and re-isolates the
breaker between two checks; use ``isolate_on_failure=False`` where that matters). A breaker
opened by real traffic is left to its own half-open probe: a real call is a better test than
a ping, and an upstream ``Retry-After`` must be honoured.
"""

from __future__ import annotations

import logging

from netra_resilience.health._entry import _Entry
from netra_resilience.health._report import ProbeResult
from netra_resilience.health._status import HealthStatus
from netra_resilience.telemetry import Severity, Telemetry

_log = logging.getLogger("netra_resilience.health")


def emit_status_change(
    telemetry: Telemetry,
    entry: _Entry,
    status: HealthStatus,
    previous: ProbeResult | None,
    error_type: str | None,
) -> None:
    """Report the check's status when it differs from the last one (or is the first)."""
    if previous is None or previous.status is not status:
        telemetry.emit(
            "health_check_status_changed",
            Severity.INFO if status is HealthStatus.PASS else Severity.WARNING,
            dependency=entry.dependency.name,
            criticality=entry.criticality.value,
            state=status.value,
            previous_state=previous.status.value if previous else None,
            error_type=error_type,
        )


async def sync_breaker(
    entry: _Entry, status: HealthStatus, telemetry: Telemetry, isolated: set[str]
) -> None:
    """Isolate the breaker on failure; close it on a pass if ``isolated`` says we opened it."""
    breaker = entry.breaker
    name = entry.dependency.name
    if breaker is None or not entry.dependency.isolate_on_failure:
        return
    state = str(breaker.state)
    try:
        if status is HealthStatus.FAIL and state != "isolated":
            await breaker.isolate()
            isolated.add(name)
            telemetry.emit(
                "health_check_isolated_breaker",
                Severity.WARNING,
                dependency=name,
                breaker_state="isolated",
            )
        elif status is HealthStatus.PASS and name in isolated:
            isolated.discard(name)
            if state == "isolated":
                await breaker.close()
                telemetry.emit(
                    "health_check_closed_breaker",
                    Severity.INFO,
                    dependency=name,
                    breaker_state="closed",
                )
    except Exception as exc:  # a misbehaving breaker must not stop the prober
        _log.warning("could not update the breaker of %s: %s", name, type(exc).__name__)
