"""GenAI semantic conventions for LLM calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from netra_resilience.cache import call_arguments
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import ExecutionRejectedError, TimeoutRejectedError
from netra_resilience.integrations._metrics import error_type
from netra_resilience.llm import request_of
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy

SCOPE = "netra_resilience"


def meter_of(provider: Any) -> metrics.Meter:
    """The ``netra_resilience`` meter of ``provider`` (the global one when ``None``)."""
    return metrics.get_meter(SCOPE, meter_provider=provider)


GEN_AI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GEN_AI_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 ... 67108864


@dataclass(frozen=True, slots=True, kw_only=True)
class GenAI:
    """GenAI semantic-convention facts about an LLM pipeline.

    ``request_model`` defaults to the call's model (its ``LlmRequest``, as ``ResilientOpenAI``
    passes it, or a ``model=`` keyword argument), else the pipeline instance
    (``("llm", "gpt-4o")`` -> ``gpt-4o``).
    """

    provider: str
    """``gen_ai.provider.name``: ``openai``, ``anthropic``, ``azure.ai.openai``, ..."""
    operation: str = "chat"
    request_model: str | None = None


def token_usage(result: object) -> tuple[int | None, int | None]:
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


class GenAiMetrics:
    """The ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` histograms."""

    __slots__ = ("_duration", "_tokens")

    def __init__(self, meter: metrics.Meter) -> None:
        self._duration = meter.create_histogram(
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

    def record(self, elapsed: float, attributes: dict[str, Any], result: object, span: Any) -> None:
        """Record one call; its token counts also go on ``span`` (when there is one)."""
        self._duration.record(elapsed, attributes)
        input_tokens, output_tokens = token_usage(result)
        for token_type, count in (("input", input_tokens), ("output", output_tokens)):
            if count is not None:
                self._tokens.record(count, {**attributes, "gen_ai.token.type": token_type})
                if span is not None:
                    span.set_attribute(f"gen_ai.usage.{token_type}_tokens", count)


_ANSWERED_WITHOUT_PROVIDER = frozenset({"stale_cache", "canned_reply", "fallback"})

MAX_MODEL_NAME = 128
"""Upstream model names are cut to this length before they become a metric attribute."""

DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


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


class OpenTelemetryStrategy(Strategy):
    """Times each call, opens its span, records ``error.type`` on failure (type only)."""

    kind = "opentelemetry"

    def __init__(self, options: OpenTelemetryOptions, build: BuildContext) -> None:
        self._clock = build.clock
        self._name = build.name
        self._instance = build.instance
        self._gen_ai = options.gen_ai
        meter = meter_of(options.meter_provider)
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
        self._gen_ai_metrics = GenAiMetrics(meter) if self._gen_ai is not None else None

    def _model(self, state: Any) -> str | None:
        assert self._gen_ai is not None
        if self._gen_ai.request_model:
            return self._gen_ai.request_model
        args, kwargs = call_arguments(state)
        # ResilientOpenAI passes an LlmRequest positionally; a plain call passes model=.
        request = request_of(args, kwargs)
        model = request.params.get("model") if request is not None else kwargs.get("model")
        return model[:MAX_MODEL_NAME] if isinstance(model, str) else (self._instance or None)

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

    def _reached_provider(self, outcome: Outcome[Any], context: ResilienceContext) -> bool:
        """Only provider operations are GenAI operations: a rejection (open breaker, rate
        limit, full bulkhead) and a degraded answer (stale, canned, fallback) are ``netra.*``
        facts, and counting them would skew the provider's latency and error rate."""
        exc = outcome.exception
        if isinstance(exc, ExecutionRejectedError) and not isinstance(exc, TimeoutRejectedError):
            return False
        degraded = context.degradation.reason(self._name) if context.degraded else None
        return degraded not in _ANSWERED_WITHOUT_PROVIDER

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
                # Upstream text becomes a metric attribute: bound it (cardinality, size).
                attributes["gen_ai.response.model"] = response_model[:MAX_MODEL_NAME]
        if failure is not None:
            attributes["error.type"] = failure
        self._duration.record(
            elapsed, {**self._base, **({"error.type": failure} if failure else {})}
        )
        if self._gen_ai_metrics is not None and self._reached_provider(outcome, context):
            self._gen_ai_metrics.record(elapsed, attributes, result, span)
        if span is not None:
            for key, value in attributes.items():
                span.set_attribute(key, value)
            reason = context.degradation.reason(self._name)
            if reason is not None:
                span.set_attribute("netra.degradation.reason", reason)
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, failure))
