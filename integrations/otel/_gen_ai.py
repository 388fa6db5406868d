"""GenAI semantic conventions: one ``gen_ai.*`` operation per provider attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

# GenAI conventions are still "Development": opentelemetry-semantic-conventions ships them
# under its incubating modules only (the import path its own docs give).
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GenAiOperationNameValues,
    GenAiTokenTypeValues,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

from netra_resilience.cache import call_arguments
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations._metrics import error_type
from netra_resilience.llm import request_of
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy

SCOPE = "netra_resilience"


def meter_of(provider: Any) -> metrics.Meter:
    """The ``netra_resilience`` meter of ``provider`` (the global one when ``None``)."""
    return metrics.get_meter(SCOPE, meter_provider=provider)


def tracer_of(provider: Any) -> trace.Tracer:
    """The ``netra_resilience`` tracer of ``provider`` (the global one when ``None``)."""
    return trace.get_tracer(SCOPE, tracer_provider=provider)


GEN_AI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GEN_AI_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 ... 67108864

MAX_MODEL_NAME = 128
"""Model names (request data, upstream text) are cut to this length before they become a
metric attribute."""

INSIDE_GEN_AI = frozenset({"chaos"})
"""Strategy kinds that may sit inside :class:`GenAIOptions`: injected faults stand for the
provider's. Anything else there (retry, breaker, timeout, cache, ...) would be recorded as
provider work."""

_INPUT = GenAiTokenTypeValues.INPUT.value
_OUTPUT = GenAiTokenTypeValues.OUTPUT.value


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


def requested_model(state: Any) -> str | None:
    """The model a call asks for: its ``LlmRequest`` (as ``ResilientOpenAI`` passes it,
    positionally) or a ``model=`` keyword argument (a plain SDK-style call)."""
    args, kwargs = call_arguments(state)
    request = request_of(args, kwargs)
    model = request.params.get("model") if request is not None else kwargs.get("model")
    return model if isinstance(model, str) and model else None


@dataclass(frozen=True, slots=True, kw_only=True)
class GenAIOptions:
    """GenAI telemetry, one operation per **provider attempt**: add it *innermost* (last, or
    give it to :func:`~netra_resilience.integrations.otel.instrument`).

    Each attempt that reaches the provider gets a ``CLIENT`` span ``"{operation} {model}"``,
    a ``gen_ai.client.operation.duration`` point and ``gen_ai.client.token.usage`` points.
    Answers that never reach it (fresh or stale cache, canned reply, fallback, a rejection by
    the breaker, limiter or bulkhead) sit outside this strategy, so they are not GenAI
    operations: they are ``netra.*`` facts (:class:`OpenTelemetryOptions`). Retries are one
    point each, and backoff sleeps are in none of them. A ``stream=True`` attempt lasts until
    its stream is open (the first answer chunk, when ``ResilientOpenAI`` returns it).

    ``gen_ai.request.model`` is the model the attempt asked for (the call's ``LlmRequest`` or
    ``model=`` argument); ``request_model`` only fills in when the call names none, else the
    pipeline instance (``("llm", "gpt-4o")`` -> ``gpt-4o``).
    """

    provider: str
    """``gen_ai.provider.name``: ``openai``, ``anthropic``, ``azure.ai.openai``, ..."""
    operation: str = GenAiOperationNameValues.CHAT.value
    request_model: str | None = None
    meter_provider: Any = None
    tracer_provider: Any = None
    spans: bool = True

    def __post_init__(self) -> None:
        for name in ("provider", "operation"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidOptionsError(
                    "GenAIOptions", name, f"must be a non-empty string, got {value!r}"
                )

    def create_strategy(self, build: BuildContext) -> GenAIStrategy:
        return GenAIStrategy(self, build)


class GenAIStrategy(Strategy):
    """Records each provider attempt under the GenAI conventions (see :class:`GenAIOptions`)."""

    __slots__ = (
        "_clock",
        "_default_model",
        "_duration",
        "_operation",
        "_provider",
        "_tokens",
        "_tracer",
    )

    kind = "gen_ai_telemetry"

    def __init__(self, options: GenAIOptions, build: BuildContext) -> None:
        self._clock = build.clock
        self._operation = options.operation
        self._provider = options.provider
        self._default_model = options.request_model or build.instance or None
        meter = meter_of(options.meter_provider)
        self._duration = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(GEN_AI_DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(GEN_AI_TOKEN_BUCKETS),
        )
        self._tracer = tracer_of(options.tracer_provider) if options.spans else None

    def on_pipeline_built(self, position: int, strategies: Sequence[Strategy]) -> None:
        inside = [s.kind for s in strategies[position + 1 :] if s.kind not in INSIDE_GEN_AI]
        if inside:
            raise InvalidOptionsError(
                "GenAIOptions",
                "position",
                f"must be the innermost strategy (add it last), so that only provider "
                f"attempts are GenAI operations; found {', '.join(inside)} inside it",
            )

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        model = requested_model(state) or self._default_model
        attributes: dict[str, Any] = {
            GEN_AI_OPERATION_NAME: self._operation,
            GEN_AI_PROVIDER_NAME: self._provider,
        }
        if model:
            attributes[GEN_AI_REQUEST_MODEL] = model[:MAX_MODEL_NAME]
        if self._tracer is None:
            return await self._attempt(callback, context, state, attributes, None)
        name = f"{self._operation} {model[:MAX_MODEL_NAME]}" if model else self._operation
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # messages may carry secrets: the type goes in error.type
            set_status_on_exception=False,
        ) as span:
            return await self._attempt(callback, context, state, attributes, span)

    async def _attempt(
        self,
        callback: Callback,
        context: ResilienceContext,
        state: Any,
        attributes: dict[str, Any],
        span: Any,
    ) -> Outcome[Any]:
        started = self._clock.monotonic()
        try:
            outcome = await callback(context, state)
        except BaseException as exc:
            # Cancelled (an attempt timeout, or the caller gave up): the request was sent, so
            # it is still a provider attempt; the cancellation itself propagates.
            self._record(started, attributes, None, error_type(exc), span)
            raise
        failure = error_type(outcome.exception)
        result = outcome.result if failure is None else None
        self._record(started, attributes, result, failure, span)
        return outcome

    def _record(
        self,
        started: float,
        attributes: dict[str, Any],
        result: object,
        failure: str | None,
        span: Any,
    ) -> None:
        elapsed = self._clock.monotonic() - started
        if result is not None:
            response_model = getattr(result, "model", None)
            if isinstance(response_model, str) and response_model:
                # Upstream text becomes a metric attribute: bound it (cardinality, size).
                attributes[GEN_AI_RESPONSE_MODEL] = response_model[:MAX_MODEL_NAME]
        if failure is not None:
            attributes[ERROR_TYPE] = failure
        self._duration.record(elapsed, attributes)
        input_tokens, output_tokens = token_usage(result)
        for token_type, key, count in (
            (_INPUT, GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
            (_OUTPUT, GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens),
        ):
            if count is not None:
                self._tokens.record(count, {**attributes, GEN_AI_TOKEN_TYPE: token_type})
                if span is not None:
                    span.set_attribute(key, count)
        if span is not None:
            for key, value in attributes.items():
                span.set_attribute(key, value)
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, failure))
