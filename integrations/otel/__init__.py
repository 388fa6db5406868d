"""OpenTelemetry: ``netra.*`` metrics and spans for resilience, ``gen_ai.*`` for provider calls.

No OpenTelemetry semantic convention covers resilience, so those instruments live under
``netra.``; LLM provider attempts follow the GenAI conventions (``gen_ai.*``), with the names
taken from ``opentelemetry-semantic-conventions``. Only the OpenTelemetry *API* is used (the
``otel`` extra pulls no SDK): with no SDK configured by the application, all of it is a no-op.

* :class:`OpenTelemetryListener` - a telemetry listener (give it to ``Resilience`` /
  ``PipelineBuilder`` / ``ServiceRegistry`` as ``telemetry=``, alone or in a
  ``CompositeListener``):

  - ``netra.events`` counter ``{event}``: every strategy event (``netra.event.name``,
    ``netra.event.severity``, ``netra.dependency.name``, ``netra.strategy.name``, ``error.type``);
  - ``netra.rejections`` counter ``{call}``: calls refused or cut short (``netra.rejection.kind``
    = ``circuit_open`` | ``rate_limited`` | ``bulkhead_full`` | ``timeout``), with criticality;
  - ``netra.circuit_breaker.transitions`` counter ``{transition}`` (``from_state``, ``to_state``);
  - with ``services=`` (or ``observe(registry)``): observable gauges
    ``netra.circuit_breaker.state`` and ``netra.health.status`` (one series per state/status,
    value 1 or 0; resilience4j's shape).

* :class:`OpenTelemetryOptions` - *outermost*: per call, the
  ``netra.dependency.operation.duration`` histogram (s; ``error.type``,
  ``netra.degradation.reason``), the ``netra.degraded_answers`` counter (stale cache, canned
  reply, fallback, ... by reason) and an ``INTERNAL`` span ``netra.call <pipeline>``.

* :class:`GenAIOptions` - *innermost* (it refuses any other place): per provider attempt, a
  ``CLIENT`` span ``"chat gpt-4o"`` and the ``gen_ai.client.operation.duration`` /
  ``gen_ai.client.token.usage`` histograms. Cache hits, canned replies, fallbacks and
  rejections (open breaker, rate limit, full bulkhead) never reach it, so they never skew the
  provider's latency or error rate; retries are one operation each, without the backoff.

* :func:`instrument` puts both around an already built pipeline (``standard_llm_pipeline``,
  ``Resilience.llm``)::

      pipeline = instrument(resilience.llm(), gen_ai=GenAIOptions(provider="openai"))
      llm = ResilientOpenAI(AsyncOpenAI(), pipeline)

With ``opentelemetry-instrumentation-openai-v2`` (the official openai instrumentation):
``ResilientOpenAI`` turns the SDK's own retries off, so each SDK call it instruments is
exactly one provider attempt, and it already emits the ``gen_ai.*`` span and metrics for it.
Then leave ``gen_ai`` out - ``instrument(pipeline)`` - and this module emits ``netra.*``
only: nothing is counted twice, and its ``chat ...`` spans nest under ``netra.call llm``.
The ``netra.call`` span carries no ``gen_ai.*`` attribute on purpose: LLM-observability
backends classify spans by them and would count the call as one more generation. Use one
source of ``gen_ai.*`` per attempt, never both.

Errors are recorded by type only (``error.type``, span status description): exception
messages may carry prompts, URLs or keys and are never exported.
"""

from __future__ import annotations

from netra_resilience.integrations.otel._gen_ai import (  # noqa: F401  (re-exported constants)
    GEN_AI_DURATION_BUCKETS,
    GEN_AI_TOKEN_BUCKETS,
    SCOPE,
    GenAIOptions,
    GenAIStrategy,
)
from netra_resilience.integrations.otel._listener import OpenTelemetryListener
from netra_resilience.integrations.otel._strategy import (  # noqa: F401  (DB_BUCKETS)
    DB_BUCKETS,
    OpenTelemetryOptions,
    OpenTelemetryStrategy,
    instrument,
)

__all__ = [
    "GenAIOptions",
    "GenAIStrategy",
    "OpenTelemetryListener",
    "OpenTelemetryOptions",
    "OpenTelemetryStrategy",
    "instrument",
]
