"""OpenTelemetry: metrics for strategy events, breaker state and health; spans and GenAI metrics.

No OpenTelemetry semantic convention covers resilience, so instruments live under ``netra.``
(anchors/conventions.md §5.6); LLM calls also get the GenAI conventions (``gen_ai.*``, §5.7).
Only ``opentelemetry-api`` is used: with no SDK configured everything is a no-op.

* :class:`OpenTelemetryListener` - a telemetry listener (give it to ``PipelineBuilder`` /
  ``ServiceRegistry`` as ``telemetry=``, alone or in a ``CompositeListener``):

  - ``netra.events`` counter ``{event}``: every strategy event (``netra.event.name``,
    ``netra.event.severity``, ``netra.dependency.name``, ``netra.strategy.name``, ``error.type``);
  - ``netra.rejections`` counter ``{call}``: calls refused or cut short (``netra.rejection.kind``
    = ``circuit_open`` | ``rate_limited`` | ``bulkhead_full`` | ``timeout``), with criticality;
  - ``netra.circuit_breaker.transitions`` counter ``{transition}`` (``from_state``, ``to_state``);
  - with ``services=`` (or ``observe(registry)``): observable gauges
    ``netra.circuit_breaker.state`` and ``netra.health.status`` (one series per state/status,
    value 1 or 0; resilience4j's shape).

* :class:`OpenTelemetryOptions` - a strategy to add *outermost* to a pipeline: the
  ``netra.dependency.operation.duration`` histogram (s), a span per call, and with ``gen_ai=``
  the ``gen_ai.client.operation.duration`` / ``gen_ai.client.token.usage`` metrics and
  ``gen_ai.*`` span attributes. Errors are recorded by type only (``error.type``, span status
  description): exception messages may carry prompts, URLs or keys and are never exported.
"""

from __future__ import annotations

from netra_resilience.integrations.otel._gen_ai import (  # noqa: F401  (the bucket bounds are re-exported)  # noqa: F401  (DB_BUCKETS is re-exported)
    DB_BUCKETS,
    GEN_AI_DURATION_BUCKETS,
    GEN_AI_TOKEN_BUCKETS,
    SCOPE,
    GenAI,
    OpenTelemetryOptions,
    OpenTelemetryStrategy,
)
from netra_resilience.integrations.otel._listener import OpenTelemetryListener

__all__ = ["GenAI", "OpenTelemetryListener", "OpenTelemetryOptions", "OpenTelemetryStrategy"]
