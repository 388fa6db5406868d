"""``application/health+json`` documents (draft-inadarei-api-health-check-06) and HTTP codes.

Framework-free: the FastAPI router (and any other adapter) serialises these dicts. The
``criticality`` and ``circuitState`` members are the draft's §4.10 "additional keys".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health._report import ComponentHealth, HealthReport
from netra_resilience.health._status import HealthStatus

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


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
