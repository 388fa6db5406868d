"""Health reports: criticality-weighted aggregation and the ``application/health+json``
document.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health._dependency import Criticality, HealthStatus, weighted, worst

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
    shared: bool = False
    """One instance behind every replica: its failure never fails readiness."""


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
        """Ready unless draining or a dependency whose criticality is in ``on`` failed, when
        that dependency is this replica's own: a ``shared`` one (the same database behind
        every replica) fails ``/health``, never readiness, so a shared outage never takes
        the whole fleet out of rotation while replicas can still answer degraded."""
        if self.draining:
            return False
        return not any(
            c.status is HealthStatus.FAIL and c.criticality in on and not c.shared
            for c in self.components
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
    shared: bool = False,
    note: str | None = None,
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
    if note is not None and status is not HealthStatus.PASS:
        outputs.append(note)
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
        shared=shared,
    )


def aggregate(components: tuple[ComponentHealth, ...]) -> HealthStatus:
    return worst(weighted(c.criticality, c.status) for c in components)


HEALTH_MEDIA_TYPE = "application/health+json"
HEALTH_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store"}
"""Probes must see live state: never cached by proxies (results are cached server-side)."""

DEFAULT_STATUS_CODES: Mapping[HealthStatus, int] = {
    HealthStatus.PASS: 200,
    HealthStatus.WARN: 200,
    HealthStatus.FAIL: 503,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """Top-level identification members of the health document (all optional)."""

    service_id: str | None = None
    version: str | None = None
    release_id: str | None = None
    description: str | None = None


def status_codes(codes: Mapping[HealthStatus | str, int] | None) -> dict[HealthStatus, int]:
    """Validate a status -> HTTP code map: all three statuses; pass/warn 2xx-3xx, fail 4xx-5xx.

    The ranges are the draft's MUSTs; Kubernetes also counts only 200-399 as success, so a
    ``warn`` mapped to 429 (Consul's convention) would fail a readiness probe.
    """
    if codes is None:
        return dict(DEFAULT_STATUS_CODES)
    result: dict[HealthStatus, int] = {}
    for key, code in codes.items():
        try:
            status = HealthStatus(str(key).lower())
        except ValueError:
            raise InvalidOptionsError(
                "health", "status_codes", f"has unknown status {key!r}"
            ) from None
        result[status] = code
    for status in HealthStatus:
        if status not in result:
            raise InvalidOptionsError("health", "status_codes", f"must map {status.value!r} too")
        code = result[status]
        low, high = (400, 599) if status is HealthStatus.FAIL else (200, 399)
        if isinstance(code, bool) or not isinstance(code, int) or not low <= code <= high:
            raise InvalidOptionsError(
                "health", "status_codes", f"{status.value!r} must map to {low}-{high}, got {code!r}"
            )
    return result


_NOTES = {
    HealthStatus.WARN: "serving in degraded mode",
    HealthStatus.FAIL: "a critical dependency is unavailable",
}


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check(c: ComponentHealth) -> dict[str, Any]:
    item: dict[str, Any] = {"componentId": c.name, "componentType": c.component_type}
    if c.observed_ms is not None:
        item["observedValue"] = c.observed_ms
        item["observedUnit"] = "ms"
    item["status"] = c.status.value
    item["time"] = _time(c.time)
    if c.output is not None and c.status is not HealthStatus.PASS:
        item["output"] = c.output
    item["criticality"] = c.criticality.value
    if c.shared:
        item["shared"] = True
    if c.circuit_state is not None:
        item["circuitState"] = c.circuit_state
    return item


def health_document(
    report: HealthReport, *, detail: bool = True, service: ServiceInfo | None = None
) -> dict[str, Any]:
    """The ``/health`` body. Without ``detail`` only ``{"status": ...}`` (for anonymous callers)."""
    document: dict[str, Any] = {"status": report.status.value}
    if not detail:
        return document
    if service is not None:
        members = {
            "version": service.version,
            "releaseId": service.release_id,
            "serviceId": service.service_id,
            "description": service.description,
        }
        document.update({key: value for key, value in members.items() if value is not None})
    if report.status is not HealthStatus.PASS:
        document["notes"] = [_NOTES[report.status]]
        output = report.output
        if output is not None:
            document["output"] = output
    if report.draining:
        document.setdefault("notes", []).append("draining: shutting down")
    document["checks"] = {c.name: [_check(c)] for c in report.components}
    return document


def readiness_document(ready: bool) -> dict[str, Any]:
    """The ``/health/ready`` body: ``pass`` or ``fail`` only (never any detail)."""
    return {"status": (HealthStatus.PASS if ready else HealthStatus.FAIL).value}


LIVENESS_DOCUMENT: Mapping[str, str] = {"status": HealthStatus.PASS.value}
"""Liveness is the process answering at all: it never consults a dependency."""


def retry_after_header(seconds: float | None) -> str | None:
    """``Retry-After`` as whole seconds (at least 1), or ``None``."""
    if seconds is None or math.isnan(seconds) or seconds <= 0:
        return None
    return str(max(1, math.ceil(min(seconds, 86_400.0))))


def encode_document(document: Mapping[str, Any]) -> bytes:
    """A health document as compact UTF-8 JSON (the body of an ``application/health+json``)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
