"""What health knows at one instant: per-dependency components and the weighted aggregate.

A component's status is the worse of two views: its circuit breaker (read live: closed ->
pass, half-open -> warn, open/isolated -> fail) and its last cached health-check result.
Outputs are built from fixed phrases, dependency names and exception *type* names only, so
no exception message (which may quote a request, a URL with a token, an API key) can leak.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from netra_resilience.health._status import Criticality, HealthStatus, weighted, worst

_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")
"""A failure is shown by its exception type name only; anything else is dropped."""
_BREAKER_STATUS = {
    "closed": HealthStatus.PASS,
    "half_open": HealthStatus.WARN,
    "open": HealthStatus.FAIL,
    "isolated": HealthStatus.FAIL,
}
_BREAKER_OUTPUT = {
    "half_open": "circuit half-open",
    "open": "circuit open",
    "isolated": "circuit isolated",
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The cached outcome of one health check run."""

    status: HealthStatus
    time: datetime
    duration: float
    """Seconds the check took (on the monitor's clock)."""
    error_type: str | None = None
    """Exception type name of a failure (``"timeout"`` when the check's own deadline passed)."""
    consecutive_failures: int = 0

    @property
    def output(self) -> str | None:
        if self.status is HealthStatus.PASS:
            return None
        if self.error_type is None:
            return f"check reported {self.status.value}"
        if self.error_type == "timeout":
            return "check timed out"
        return f"check failed: {self.error_type}"


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One dependency as health sees it (an IETF ``checks`` entry)."""

    name: str
    criticality: Criticality
    component_type: str
    status: HealthStatus
    circuit_state: str | None
    observed_ms: float | None
    time: datetime
    output: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The service's health: criticality-weighted aggregate plus every component."""

    status: HealthStatus
    components: tuple[ComponentHealth, ...]
    time: datetime
    draining: bool = False

    def component(self, name: str) -> ComponentHealth | None:
        return next((c for c in self.components if c.name == name), None)

    def ready(self, on: Collection[Criticality] = (Criticality.CRITICAL,)) -> bool:
        """Ready unless draining or a dependency whose criticality is in ``on`` failed."""
        if self.draining:
            return False
        return not any(
            c.status is HealthStatus.FAIL and c.criticality in on for c in self.components
        )

    @property
    def retry_after(self) -> float | None:
        """When a failing critical dependency may be back (the latest breaker estimate)."""
        hints = [
            c.retry_after
            for c in self.components
            if c.criticality is Criticality.CRITICAL
            and c.status is HealthStatus.FAIL
            and c.retry_after is not None
        ]
        return max(hints) if hints else None

    @property
    def output(self) -> str | None:
        """``name: what`` for every failing/warning dependency that counts."""
        parts = [
            f"{c.name}: {c.output or c.status.value}"
            for c in self.components
            if c.status is not HealthStatus.PASS and c.criticality is not Criticality.MONITORING
        ]
        return "; ".join(parts) or None


def component(
    *,
    name: str,
    criticality: Criticality,
    component_type: str,
    state: str | None,
    breaker_retry_after: float | None,
    last_failure_type: object,
    probe: ProbeResult | None,
    has_check: bool,
    probe_interval: float,
    now: datetime,
) -> ComponentHealth:
    statuses: list[HealthStatus] = []
    outputs: list[str] = []
    if state is not None:
        statuses.append(_BREAKER_STATUS.get(state, HealthStatus.WARN))
        phrase = _BREAKER_OUTPUT.get(state)
        if phrase is not None:
            if isinstance(last_failure_type, str) and _TYPE_NAME.fullmatch(last_failure_type):
                phrase += f" (last failure: {last_failure_type})"
            outputs.append(phrase)
    if probe is not None:
        statuses.append(probe.status)
        if probe.output is not None:
            outputs.append(probe.output)
    elif has_check:
        statuses.append(HealthStatus.WARN)
        outputs.append("not checked yet")
    status = worst(statuses)
    retry_after: float | None = None
    if status is HealthStatus.FAIL:
        retry_after = breaker_retry_after if breaker_retry_after else None
        if retry_after is None and has_check:
            retry_after = probe_interval
    return ComponentHealth(
        name=name,
        criticality=criticality,
        component_type=component_type,
        status=status,
        circuit_state=state,
        observed_ms=round(probe.duration * 1000.0, 3) if probe is not None else None,
        time=probe.time if probe is not None else now,
        output="; ".join(outputs) or None,
        retry_after=retry_after,
    )


def aggregate(components: tuple[ComponentHealth, ...]) -> HealthStatus:
    return worst(weighted(c.criticality, c.status) for c in components)
