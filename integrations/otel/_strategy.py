"""``netra.*`` telemetry of whole calls through a pipeline, and :func:`instrument`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import Degradation, DegradationEntry, safe_token
from netra_resilience.integrations._metrics import error_type
from netra_resilience.integrations.otel._gen_ai import (
    GenAIOptions,
    GenAIStrategy,
    meter_of,
    tracer_of,
)
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.strategy import BuildContext, Callback, Strategy

DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

DEGRADATION_REASON = "netra.degradation.reason"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTelemetryOptions:
    """``netra.*`` telemetry of each call through the pipeline: add it *outermost* (first).

    * ``netra.dependency.operation.duration`` (s): every call, with ``error.type`` on failure
      and ``netra.degradation.reason`` when the answer was degraded;
    * ``netra.degraded_answers`` (``{answer}``): answers served instead of the dependency's,
      by reason (``stale_cache``, ``canned_reply``, ``fallback``, ...);
    * with ``spans``, an ``INTERNAL`` span ``netra.call <pipeline>`` (parent of the provider
      attempts' spans, ours or an instrumentation's).

    No ``gen_ai.*`` here: a pipeline call may be answered by a cache or a canned reply, so it
    is not a GenAI operation (:class:`GenAIOptions` records those, per attempt).
    """

    meter_provider: Any = None
    tracer_provider: Any = None
    criticality: str = ""
    spans: bool = True

    def create_strategy(self, build: BuildContext) -> OpenTelemetryStrategy:
        return OpenTelemetryStrategy(self, build)


class OpenTelemetryStrategy(Strategy):
    """Times each call, opens its span, records ``error.type`` (type only) and how the answer
    degraded."""

    __slots__ = ("_base", "_clock", "_degraded", "_dependency", "_duration", "_span", "_tracer")

    kind = "opentelemetry"

    def __init__(self, options: OpenTelemetryOptions, build: BuildContext) -> None:
        self._clock = build.clock
        self._span = f"netra.call {build.name}"
        self._dependency = safe_token(build.name)  # as degradation marks spell it
        meter = meter_of(options.meter_provider)
        self._duration = meter.create_histogram(
            "netra.dependency.operation.duration",
            unit="s",
            description="Duration of calls through the dependency's pipeline",
            explicit_bucket_boundaries_advisory=list(DB_BUCKETS),
        )
        self._degraded = meter.create_counter(
            "netra.degraded_answers",
            unit="{answer}",
            description="Answers served in place of the dependency's (stale cache, canned "
            "reply, fallback, ...), by reason",
        )
        self._base: dict[str, str] = {"netra.dependency.name": build.name}
        if options.criticality:
            self._base["netra.dependency.criticality"] = options.criticality
        self._tracer = tracer_of(options.tracer_provider) if options.spans else None

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        # The marks made during *this* call (a request-wide record also holds earlier ones).
        reasons: list[str] = []

        def on_mark(_: Degradation, entry: DegradationEntry) -> None:
            if entry.dependency == self._dependency:
                reasons.append(entry.reason)

        unsubscribe = context.degradation.subscribe(on_mark)
        started = self._clock.monotonic()
        try:
            if self._tracer is None:
                outcome = await callback(context, state)
                self._record(outcome, started, reasons, None)
                return outcome
            with self._tracer.start_as_current_span(
                self._span,
                kind=SpanKind.INTERNAL,
                attributes=self._base,
                record_exception=False,  # messages may carry secrets: the type goes in error.type
                set_status_on_exception=False,
            ) as span:
                outcome = await callback(context, state)
                self._record(outcome, started, reasons, span)
            return outcome
        finally:
            unsubscribe()

    def _record(self, outcome: Outcome[Any], started: float, reasons: list[str], span: Any) -> None:
        elapsed = self._clock.monotonic() - started
        failure = error_type(outcome.exception)
        reason = reasons[-1] if reasons else None  # the latest mark wins, as in the header
        attributes = dict(self._base)
        if failure is not None:
            attributes[ERROR_TYPE] = failure
        if reason is not None:
            attributes[DEGRADATION_REASON] = reason
        self._duration.record(elapsed, attributes)
        if reason is not None and failure is None:
            self._degraded.add(1, {**self._base, DEGRADATION_REASON: reason})
        if span is not None:
            if reason is not None:
                span.set_attribute(DEGRADATION_REASON, reason)
            if failure is not None:
                span.set_attribute(ERROR_TYPE, failure)
                span.set_status(Status(StatusCode.ERROR, failure))


def instrument(
    pipeline: Pipeline,
    options: OpenTelemetryOptions | None = None,
    *,
    gen_ai: GenAIOptions | None = None,
) -> Pipeline:
    """``pipeline`` with OpenTelemetry around and inside it; use the result in its place.

    ``options`` (default: the global providers) goes outermost: ``netra.*`` for every call.
    ``gen_ai`` goes innermost: ``gen_ai.*`` for every provider attempt. Leave ``gen_ai`` out
    when an instrumentation of the provider SDK (``opentelemetry-instrumentation-openai-v2``)
    already emits ``gen_ai.*``, or each attempt would be counted twice.

    The strategies are the same objects (one breaker, one limiter, ... for both pipelines, so
    health still sees them), on the pipeline's own clock::

        llm = ResilientOpenAI(client, instrument(standard_llm_pipeline(...),
                                                 gen_ai=GenAIOptions(provider="openai")))
    """
    if any(isinstance(s, OpenTelemetryStrategy | GenAIStrategy) for s in pipeline.strategies):
        raise ValueError(f"pipeline {pipeline.name!r} already has OpenTelemetry strategies")
    build = pipeline.build_context
    outer = (options or OpenTelemetryOptions()).create_strategy(build)
    inner: tuple[Strategy, ...] = () if gen_ai is None else (gen_ai.create_strategy(build),)
    strategies = (outer, *pipeline.strategies, *inner)
    # The wrapped strategies were wired when their pipeline was built and keep their order;
    # only the new ones are told where they sit.
    outer.on_pipeline_built(0, strategies)
    for strategy in inner:
        strategy.on_pipeline_built(len(strategies) - 1, strategies)
    return Pipeline(pipeline.name, pipeline.instance, strategies, build)
