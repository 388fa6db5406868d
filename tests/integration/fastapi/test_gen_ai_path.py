"""GenAI telemetry on the documented path: ``ResilientOpenAI`` over the LLM preset, with the
real OpenTelemetry SDK's in-memory readers.

``gen_ai.*`` is one operation per provider attempt, with the model from the call's
``LlmRequest``; cache hits, canned replies, stale answers and open-breaker rejections are
``netra.*`` facts only; without ``gen_ai`` the official instrumentation owns ``gen_ai.*``.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import httpx2
import openai
import pytest
from openai.resources.chat.completions import AsyncCompletions
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from netra_resilience import (
    BrokenCircuitError,
    InvalidOptionsError,
    ResilienceContext,
    standard_llm_pipeline,
    use_context,
)
from netra_resilience.cache import InMemoryTTLCache
from netra_resilience.chaos import ChaosControl, ChaosOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply
from netra_resilience.integrations.otel import GenAIOptions, OpenTelemetryOptions, instrument
from netra_resilience.llm import LLM_BREAKER_FAILURE
from netra_resilience.pipeline import PipelineBuilder
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    FAKE_KEY,
    GOOD_STREAM,
    Upstream,
    completion,
    plain_client,
    sse_body,
    sse_response,
)

DURATION = "gen_ai.client.operation.duration"
OVERLOADED = httpx2.Response(503, json={"error": {"message": f"overloaded {FAKE_KEY}"}})


class Exported:
    """An SDK meter and tracer provider writing to in-memory readers."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def points(self, name: str, scope: str | None = None) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scopes in resource.scope_metrics
            if scope is None or scopes.scope.name == scope
            for metric in scopes.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def spans(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]

    def degraded(self) -> dict[str, int]:
        return {
            p.attributes["netra.degradation.reason"]: p.value
            for p in self.points("netra.degraded_answers")
        }


def calls_by(exported: Exported, attribute: str) -> Counter[str]:
    """How many calls ``netra.dependency.operation.duration`` saw, by one attribute."""
    found: Counter[str] = Counter()
    for point in exported.points("netra.dependency.operation.duration"):
        found[point.attributes.get(attribute, "")] += point.count
    return found


@pytest.fixture
def exported() -> Exported:
    return Exported()


def answer(text: str = "4", **usage: int) -> dict[str, Any]:
    body = completion(text, model="gpt-x-2026-01-01")
    if usage:
        body["usage"] = {**usage, "total_tokens": sum(usage.values())}
    return body


def resilient(
    clock: FakeClock,
    upstream: Upstream,
    exported: Exported,
    *,
    gen_ai: bool = True,
    attempts: int = 1,
    **preset: Any,
) -> ResilientOpenAI:
    pipeline = standard_llm_pipeline(
        "llm",
        clock=clock,
        retry=RetryOptions(max_attempts=attempts, delay=1.0, use_jitter=False),
        circuit_breaker=CircuitBreakerOptions(
            failure_ratio=0.5,
            minimum_throughput=2,
            sampling_duration=120.0,
            break_duration=30.0,
            should_handle=LLM_BREAKER_FAILURE,
            retry_after=None,
        ),
        **preset,
    )
    pipeline = instrument(
        pipeline,
        OpenTelemetryOptions(meter_provider=exported.meters, tracer_provider=exported.tracers),
        gen_ai=GenAIOptions(
            provider="openai", meter_provider=exported.meters, tracer_provider=exported.tracers
        )
        if gen_ai
        else None,
    )
    return ResilientOpenAI(plain_client(upstream), pipeline)


async def ask(llm: ResilientOpenAI, clock: FakeClock, question: str = "2+2?") -> str | None:
    with use_context(ResilienceContext("chat", user_id="u1")):
        reply = await advance_until_done(
            clock,
            llm.chat.completions.create(
                model="gpt-x", messages=[{"role": "user", "content": question}]
            ),
        )
    content: str | None = reply.choices[0].message.content
    return content


async def test_the_model_comes_from_the_request_on_the_resilient_openai_path(
    clock: FakeClock, exported: Exported
) -> None:
    upstream = Upstream(answer(prompt_tokens=12, completion_tokens=5))
    llm = resilient(clock, upstream, exported)
    assert await ask(llm, clock) == "4"

    [point] = exported.points(DURATION)
    assert dict(point.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-x",  # from the LlmRequest ResilientOpenAI passes
        "gen_ai.response.model": "gpt-x-2026-01-01",
    }
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in exported.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 12, "output": 5}
    [attempt] = exported.spans("chat gpt-x")
    [call] = exported.spans("netra.call llm")
    assert attempt.kind is SpanKind.CLIENT and call.kind is SpanKind.INTERNAL
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    assert attempt.attributes is not None and attempt.attributes["gen_ai.usage.output_tokens"] == 5
    [netra] = exported.points("netra.dependency.operation.duration")
    assert dict(netra.attributes) == {"netra.dependency.name": "llm"}


async def test_a_stream_is_one_operation_timed_until_its_first_answer_chunk(
    clock: FakeClock, exported: Exported
) -> None:
    upstream = Upstream(sse_response(sse_body(*GOOD_STREAM)))
    llm = resilient(clock, upstream, exported)
    with use_context(ResilienceContext("chat", user_id="u1")):
        stream = await advance_until_done(
            clock,
            llm.chat.completions.create(
                model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
            ),
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello"
    [point] = exported.points(DURATION)
    assert point.attributes["gen_ai.request.model"] == "gpt-x"
    assert "error.type" not in point.attributes


async def test_each_retry_is_one_operation_and_the_backoff_is_in_none(
    clock: FakeClock, exported: Exported
) -> None:
    upstream = Upstream(OVERLOADED, answer())
    llm = resilient(clock, upstream, exported, attempts=2)
    assert await ask(llm, clock) == "4"

    attempts = exported.points(DURATION)
    errors = sorted(p.attributes.get("error.type", "") for p in attempts)
    assert errors == ["", "InternalServerError"] and len(upstream.calls) == 2
    assert sum(p.sum for p in attempts) == 0.0  # the provider answered at once, twice
    [call] = exported.points("netra.dependency.operation.duration")
    assert call.sum == 1.0  # the caller waited for the 1 s backoff: a netra.* fact
    assert len(exported.spans("chat gpt-x")) == 2 and len(exported.spans("netra.call llm")) == 1


async def test_a_fresh_cache_hit_is_not_a_gen_ai_operation(
    clock: FakeClock, exported: Exported
) -> None:
    upstream = Upstream(answer())
    llm = resilient(clock, upstream, exported, cache=InMemoryTTLCache(clock=clock), cache_ttl=60)
    assert await ask(llm, clock) == "4"
    assert await ask(llm, clock) == "4"  # from the cache

    assert len(upstream.calls) == 1
    assert len(exported.points(DURATION)) == 1
    [netra] = exported.points("netra.dependency.operation.duration")
    assert netra.count == 2  # both answers, one of them cached


async def test_open_breaker_stale_and_canned_answers_are_netra_facts_only(
    clock: FakeClock, exported: Exported
) -> None:
    upstream = Upstream(answer("fresh"))
    llm = resilient(
        clock,
        upstream,
        exported,
        cache=InMemoryTTLCache(clock=clock),
        canned_reply=canned_reply("busy", clock=clock),
    )
    assert await ask(llm, clock, "q1") == "fresh"
    upstream.script(OVERLOADED)
    assert await ask(llm, clock, "q2") == "busy"  # one failed attempt, then the canned reply
    # 1 ok + 1 failure over the minimum throughput of 2: the breaker is open now
    assert await ask(llm, clock, "q1") == "fresh"  # stale, without asking the provider
    assert await ask(llm, clock, "q3") == "busy"  # canned, without asking the provider

    assert len(upstream.calls) == 2
    attempts = exported.points(DURATION)
    assert sorted(p.attributes.get("error.type", "") for p in attempts) == [
        "",
        "InternalServerError",
    ]
    assert len(exported.spans("chat gpt-x")) == 2
    assert exported.degraded() == {"canned_reply": 2, "stale_cache": 1}
    reasons = calls_by(exported, "netra.degradation.reason")
    assert reasons == {"": 1, "canned_reply": 2, "stale_cache": 1}
    marked = [
        (s.attributes or {}).get("netra.degradation.reason")
        for s in exported.spans("netra.call llm")
    ]
    assert marked == [None, "canned_reply", "stale_cache", "canned_reply"]
    exported_text = repr(exported.reader.get_metrics_data()) + repr(
        [s.attributes for s in exported.exporter.get_finished_spans()]
    )
    assert FAKE_KEY not in exported_text


async def test_an_open_breaker_rejection_is_not_a_provider_error(
    clock: FakeClock, exported: Exported
) -> None:
    upstream = Upstream(OVERLOADED)
    llm = resilient(clock, upstream, exported)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await ask(llm, clock)
    with pytest.raises(BrokenCircuitError):
        await ask(llm, clock)

    assert len(upstream.calls) == 2
    errors = [p.attributes.get("error.type") for p in exported.points(DURATION)]
    assert errors == ["InternalServerError"]  # one series, two points; no circuit_open
    assert exported.points(DURATION)[0].count == 2
    netra = calls_by(exported, "error.type")
    assert netra == {"InternalServerError": 2, "circuit_open": 1}
    assert exported.degraded() == {}  # no answer at all is not a degraded answer


def official_instrumentation(monkeypatch: pytest.MonkeyPatch, exported: Exported) -> None:
    """Stands in for ``opentelemetry-instrumentation-openai-v2``: it wraps the SDK's
    ``AsyncCompletions.create`` and records one CLIENT span and ``gen_ai`` point per SDK call
    (the real package could not be installed next to this SDK version)."""
    tracer = exported.tracers.get_tracer("opentelemetry.instrumentation.openai_v2")
    duration = exported.meters.get_meter(
        "opentelemetry.instrumentation.openai_v2"
    ).create_histogram(DURATION, unit="s")
    original = AsyncCompletions.create

    @functools.wraps(original)
    async def create(self: AsyncCompletions, *args: Any, **kwargs: Any) -> Any:
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": kwargs["model"]}
        with tracer.start_as_current_span(f"chat {kwargs['model']}", kind=SpanKind.CLIENT):
            try:
                return await original(self, *args, **kwargs)
            finally:
                duration.record(0.0, attributes)

    monkeypatch.setattr(AsyncCompletions, "create", create)  # undone after the test


async def test_without_gen_ai_the_official_instrumentation_owns_gen_ai_and_nothing_doubles(
    clock: FakeClock, exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    official_instrumentation(monkeypatch, exported)
    upstream = Upstream(OVERLOADED, answer())
    llm = resilient(
        clock,
        upstream,
        exported,
        gen_ai=False,
        attempts=2,
        cache=InMemoryTTLCache(clock=clock),
        cache_ttl=60,
    )
    assert await ask(llm, clock) == "4"  # two attempts
    assert await ask(llm, clock) == "4"  # a cache hit: no SDK call

    ours = exported.points(DURATION, scope="netra_resilience")
    theirs = exported.points(DURATION, scope="opentelemetry.instrumentation.openai_v2")
    assert ours == []
    assert sum(p.count for p in theirs) == len(upstream.calls) == 2  # once per attempt
    calls = exported.spans("netra.call llm")
    attempts = exported.spans("chat gpt-x")
    assert len(calls) == 2 and len(attempts) == 2
    assert {a.parent.span_id for a in attempts if a.parent} == {calls[0].context.span_id}
    assert not any(k.startswith("gen_ai.") for c in calls for k in (c.attributes or {}))
    assert exported.points("netra.dependency.operation.duration")[0].count == 2


def test_gen_ai_options_must_be_innermost_and_instrument_once() -> None:
    gen_ai = GenAIOptions(provider="openai")
    with pytest.raises(InvalidOptionsError, match=r"GenAIOptions\.position .*retry"):
        PipelineBuilder("llm").add(gen_ai).add_retry(RetryOptions(max_attempts=2)).build()
    chaos = ChaosOptions(control=ChaosControl())
    PipelineBuilder("llm").add(gen_ai).add_chaos(chaos).build()  # injected provider faults
    with pytest.raises(InvalidOptionsError, match="provider"):
        GenAIOptions(provider="")
    pipeline = instrument(standard_llm_pipeline("llm"), gen_ai=gen_ai)
    assert [s.kind for s in pipeline.strategies][:: len(pipeline.strategies) - 1] == [
        "opentelemetry",
        "gen_ai_telemetry",
    ]
    with pytest.raises(ValueError, match="already has OpenTelemetry"):
        instrument(pipeline)
