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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from netra_resilience.context import ResilienceContext
from netra_resilience.health import ServiceRegistry
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import TelemetryEvent

from ._metrics_common import (
    REJECTION_EVENTS,
    TRANSITION_EVENTS,
    breaker_states,
    criticality,
    error_type,
    event_error_type,
    health_statuses,
)

__all__ = ["GenAI", "OpenTelemetryListener", "OpenTelemetryOptions", "OpenTelemetryStrategy"]

SCOPE = "netra_resilience"
DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
GEN_AI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GEN_AI_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 ... 67108864


def _meter(provider: Any) -> metrics.Meter:
    return metrics.get_meter(SCOPE, meter_provider=provider)


class OpenTelemetryListener:
    """Turns strategy and health events into ``netra.*`` metrics; see the module doc."""

    def __init__(
        self, *, meter_provider: Any = None, services: ServiceRegistry | None = None
    ) -> None:
        meter = _meter(meter_provider)
        self._services = services
        self._events = meter.create_counter(
            "netra.events", unit="{event}", description="Resilience events"
        )
        self._rejections = meter.create_counter(
            "netra.rejections",
            unit="{call}",
            description="Calls refused or cut short by a strategy",
        )
        self._transitions = meter.create_counter(
            "netra.circuit_breaker.transitions",
            unit="{transition}",
            description="Breaker state changes",
        )
        meter.create_observable_gauge(
            "netra.circuit_breaker.state",
            callbacks=[self._observe_breakers],
            unit="1",
            description="1 for the breaker's current state, 0 for the others",
        )
        meter.create_observable_gauge(
            "netra.health.status",
            callbacks=[self._observe_health],
            unit="1",
            description="1 for the current health status (aggregate and per dependency)",
        )

    def observe(self, services: ServiceRegistry) -> None:
        """Report ``services``' breaker states and health (when the registry needs this listener
        at construction, bind it afterwards)."""
        self._services = services

    def on_event(self, event: TelemetryEvent) -> None:
        dependency = event.source.pipeline
        attributes: dict[str, str] = {
            "netra.event.name": event.name,
            "netra.event.severity": event.severity.name.lower(),
            "netra.dependency.name": dependency,
            "netra.strategy.name": event.source.strategy,
        }
        if event.operation_key:
            attributes["netra.operation.key"] = event.operation_key
        failure = event_error_type(event)
        if failure is not None:
            attributes["error.type"] = failure
        self._events.add(1, attributes)
        kind = REJECTION_EVENTS.get(event.name)
        if kind is not None:
            self._rejections.add(
                1,
                {
                    "netra.dependency.name": dependency,
                    "netra.dependency.criticality": criticality(self._services, dependency),
                    "netra.rejection.kind": kind,
                },
            )
        if event.name in TRANSITION_EVENTS:
            self._transitions.add(
                1,
                {
                    "netra.dependency.name": dependency,
                    "netra.circuit_breaker.from_state": str(event.args.get("previous_state", "")),
                    "netra.circuit_breaker.to_state": str(event.args.get("state", "")),
                },
            )

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._services is None:
            return []
        return [
            Observation(
                value, {"netra.dependency.name": name, "netra.circuit_breaker.state": state}
            )
            for name, state, value in breaker_states(self._services)
        ]

    def _observe_health(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._services is None:
            return []
        observations = []
        for name, status, value in health_statuses(self._services):
            attributes = {"netra.health.status": status}
            if name:
                attributes["netra.dependency.name"] = name
            observations.append(Observation(value, attributes))
        return observations


@dataclass(frozen=True, slots=True, kw_only=True)
class GenAI:
    """GenAI semantic-convention facts about an LLM pipeline.

    ``request_model`` defaults to the call's ``model=`` keyword argument (the openai SDK's
    ``create(model=...)``), else the pipeline instance (``("llm", "gpt-4o")`` -> ``gpt-4o``).
    """

    provider: str
    """``gen_ai.provider.name``: ``openai``, ``anthropic``, ``azure.ai.openai``, ..."""
    operation: str = "chat"
    request_model: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTelemetryOptions:
    """Add outermost: ``builder.add(OpenTelemetryOptions(gen_ai=GenAI(provider="openai")))``."""

    meter_provider: Any = None
    tracer_provider: Any = None
    criticality: str = ""
    gen_ai: GenAI | None = None
    spans: bool = True

    def create_strategy(self, build: BuildContext) -> OpenTelemetryStrategy:
        return OpenTelemetryStrategy(self, build)


def _usage(result: object) -> tuple[int | None, int | None]:
    """Input/output token counts of an openai/anthropic-shaped response, if it has them."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return None, None
    counts = []
    for names in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        value = next(
            (getattr(usage, n) for n in names if isinstance(getattr(usage, n, None), int)), None
        )
        counts.append(value)
    return counts[0], counts[1]


class OpenTelemetryStrategy(Strategy):
    """Times each call, opens its span, records ``error.type`` on failure (type only)."""

    kind = "opentelemetry"

    def __init__(self, options: OpenTelemetryOptions, build: BuildContext) -> None:
        self._clock = build.clock
        self._name = build.name
        self._instance = build.instance
        self._gen_ai = options.gen_ai
        meter = _meter(options.meter_provider)
        self._duration = meter.create_histogram(
            "netra.dependency.operation.duration",
            unit="s",
            description="Duration of calls through the dependency's pipeline",
            explicit_bucket_boundaries_advisory=list(DB_BUCKETS),
        )
        self._base: dict[str, str] = {"netra.dependency.name": build.name}
        if options.criticality:
            self._base["netra.dependency.criticality"] = options.criticality
        self._tracer = (
            trace.get_tracer(SCOPE, tracer_provider=options.tracer_provider)
            if options.spans
            else None
        )
        if self._gen_ai is not None:
            self._gen_duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=list(GEN_AI_DURATION_BUCKETS),
            )
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=list(GEN_AI_TOKEN_BUCKETS),
            )

    def _model(self, state: Any) -> str | None:
        assert self._gen_ai is not None
        if self._gen_ai.request_model:
            return self._gen_ai.request_model
        try:
            model = state[2].get("model")
        except (TypeError, IndexError, AttributeError):
            model = None
        return model if isinstance(model, str) else (self._instance or None)

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        gen_ai = self._gen_ai
        attributes: dict[str, Any] = {}
        span_name = f"netra.call {self._name}"
        if gen_ai is not None:
            attributes["gen_ai.operation.name"] = gen_ai.operation
            attributes["gen_ai.provider.name"] = gen_ai.provider
            model = self._model(state)
            if model:
                attributes["gen_ai.request.model"] = model
            span_name = f"{gen_ai.operation} {model}" if model else gen_ai.operation
        started = self._clock.monotonic()
        if self._tracer is None:
            outcome = await callback(context, state)
            self._record(outcome, started, attributes, context, None)
            return outcome
        kind = SpanKind.CLIENT if gen_ai is not None else SpanKind.INTERNAL
        with self._tracer.start_as_current_span(
            span_name,
            kind=kind,
            attributes={**self._base, **attributes},
            record_exception=False,  # messages may carry secrets: the type goes in error.type
            set_status_on_exception=False,
        ) as span:
            outcome = await callback(context, state)
            self._record(outcome, started, attributes, context, span)
        return outcome

    def _record(
        self,
        outcome: Outcome[Any],
        started: float,
        attributes: dict[str, Any],
        context: ResilienceContext,
        span: Any,
    ) -> None:
        elapsed = self._clock.monotonic() - started
        failure = error_type(outcome.exception)
        result = outcome.result if failure is None else None
        if self._gen_ai is not None and result is not None:
            response_model = getattr(result, "model", None)
            if isinstance(response_model, str):
                attributes["gen_ai.response.model"] = response_model
        if failure is not None:
            attributes["error.type"] = failure
        self._duration.record(
            elapsed, {**self._base, **({"error.type": failure} if failure else {})}
        )
        if self._gen_ai is not None:
            self._gen_duration.record(elapsed, attributes)
            input_tokens, output_tokens = _usage(result)
            for token_type, count in (("input", input_tokens), ("output", output_tokens)):
                if count is not None:
                    self._tokens.record(count, {**attributes, "gen_ai.token.type": token_type})
                    if span is not None:
                        span.set_attribute(f"gen_ai.usage.{token_type}_tokens", count)
        if span is not None:
            for key, value in attributes.items():
                span.set_attribute(key, value)
            reason = context.degradation.reason(self._name)
            if reason is not None:
                span.set_attribute("netra.degradation.reason", reason)
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, failure))
