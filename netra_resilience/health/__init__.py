"""Service registry, criticality-weighted health, background checks, health+json documents.

Framework-free: the FastAPI/ASGI adapters live in ``netra_resilience.integrations``.

* :class:`ServiceRegistry` declares the dependencies once (from code, a settings mapping or
  environment variables), builds their pipelines and finds their breakers.
* :class:`HealthMonitor` (``registry.monitor``) runs cheap checks in the background on the
  injected clock, caches the results, and isolates/closes breakers as checks fail/recover.
* :func:`health_document` renders a :class:`HealthReport` as ``application/health+json``.
"""

from netra_resilience.health._dependency import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_PROBE_INTERVAL,
    BreakerLike,
    Criticality,
    Dependency,
    HealthCheck,
    HealthStatus,
)
from netra_resilience.health._registry import HealthMonitor, ServiceRegistry, find_breaker
from netra_resilience.health._report import (
    DEFAULT_STATUS_CODES,
    HEALTH_HEADERS,
    HEALTH_MEDIA_TYPE,
    LIVENESS_DOCUMENT,
    ComponentHealth,
    HealthReport,
    ProbeResult,
    ServiceInfo,
    encode_document,
    health_document,
    readiness_document,
    retry_after_header,
    status_codes,
)

__all__ = [
    "DEFAULT_CHECK_TIMEOUT",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_STATUS_CODES",
    "HEALTH_HEADERS",
    "HEALTH_MEDIA_TYPE",
    "LIVENESS_DOCUMENT",
    "BreakerLike",
    "ComponentHealth",
    "Criticality",
    "Dependency",
    "HealthCheck",
    "HealthMonitor",
    "HealthReport",
    "HealthStatus",
    "ProbeResult",
    "ServiceInfo",
    "ServiceRegistry",
    "encode_document",
    "find_breaker",
    "health_document",
    "readiness_document",
    "retry_after_header",
    "status_codes",
]
