"""OpenTelemetry and Prometheus adapters: netra.* metrics, gen_ai.* attributes, no secrets."""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, generate_latest

from netra_resilience import BrokenCircuitError
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.health import Dependency, ServiceRegistry
from netra_resilience.integrations.otel import (
    GenAIOptions,
    OpenTelemetryListener,
    OpenTelemetryOptions,
)
from netra_resilience.integrations.prometheus import PrometheusListener, metrics_app
from netra_resilience.telemetry import CompositeListener, LoggingListener
from netra_resilience.testing import FakeClock

FAKE_KEY = "sk-proj-FAKE0123456789abcdefSECRET"


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Completion:
    model: str
    usage: Usage


async def create(*, model: str, messages: list[str]) -> Completion:
    return Completion(model=f"{model}-2024-08-06", usage=Usage(12, 5))


async def broken(*, model: str, messages: list[str]) -> Completion:
    raise PermissionError(f"Incorrect API key provided: {FAKE_KEY}")


def breaker() -> CircuitBreakerOptions:
    return CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=3, break_duration=15)


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_opentelemetry_metrics_spans_and_gen_ai(clock: FakeClock) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    listener = OpenTelemetryListener(meter_provider=meters)
    otel = OpenTelemetryOptions(
        meter_provider=meters, tracer_provider=tracers, criticality="important"
    )
    per_attempt = GenAIOptions(provider="openai", meter_provider=meters, tracer_provider=tracers)
    registry = ServiceRegistry(
        [Dependency("llm", "important", strategies=[otel, breaker(), per_attempt])],
        clock=clock,
        telemetry=listener,
    )
    listener.observe(registry)
    pipeline = registry.pipeline("llm")

    result = await pipeline.execute(create, model="gpt-4o", messages=["hi"])
    assert result.model == "gpt-4o-2024-08-06"
    for _ in range(2):
        with pytest.raises(PermissionError):
            await pipeline.execute(broken, model="gpt-4o", messages=["hi"])
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(create, model="gpt-4o", messages=["hi"])

    found = points(reader)
    durations = found["netra.dependency.operation.duration"]
    assert sorted(p.attributes.get("error.type", "") for p in durations) == [
        "",
        "PermissionError",
        "circuit_open",
    ]
    assert all(p.attributes["netra.dependency.criticality"] == "important" for p in durations)
    gen_ai = found["gen_ai.client.operation.duration"]
    # the open-breaker rejection is a netra.* fact, not a provider operation
    assert sorted(p.attributes.get("error.type", "") for p in gen_ai) == ["", "PermissionError"]
    ok = next(p for p in gen_ai if "error.type" not in p.attributes)
    assert dict(ok.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
    }
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in found["gen_ai.client.token.usage"]}
    assert tokens == {"input": 12, "output": 5}
    events = {(p.attributes["netra.event.name"], p.value) for p in found["netra.events"]}
    assert ("circuit_opened", 1) in events and ("circuit_rejected", 1) in events
    rejections = found["netra.rejections"]
    assert [(dict(p.attributes), p.value) for p in rejections] == [
        (
            {
                "netra.dependency.name": "llm",
                "netra.dependency.criticality": "important",
                "netra.rejection.kind": "circuit_open",
            },
            1,
        )
    ]
    transition = found["netra.circuit_breaker.transitions"][0]
    assert transition.attributes["netra.circuit_breaker.from_state"] == "closed"
    assert transition.attributes["netra.circuit_breaker.to_state"] == "open"
    states = {
        p.attributes["netra.circuit_breaker.state"]: p.value
        for p in found["netra.circuit_breaker.state"]
    }
    assert states == {"closed": 0, "open": 1, "half_open": 0, "isolated": 0}
    health = {
        (
            p.attributes.get("netra.dependency.name", ""),
            p.attributes["netra.health.status"],
        ): p.value
        for p in found["netra.health.status"]
    }
    assert health[("", "warn")] == 1 and health[("llm", "fail")] == 1

    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.name == "netra.call llm"]
    attempts = [s for s in finished if s.name == "chat gpt-4o"]
    assert len(calls) == 4 and len(attempts) == 3  # the rejected call reached no provider
    assert all(s.kind is SpanKind.INTERNAL for s in calls)
    assert all(s.kind is SpanKind.CLIENT for s in attempts)
    # each provider attempt is a child of its call's span
    assert [a.parent and a.parent.span_id for a in attempts] == [
        c.context.span_id for c in calls[:3]
    ]
    first, failed = attempts[0], attempts[1]
    assert first.attributes is not None and first.attributes["gen_ai.usage.input_tokens"] == 12
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "PermissionError"
    rejected = calls[3]
    assert rejected.attributes is not None
    assert rejected.attributes["error.type"] == "circuit_open"
    assert rejected.attributes["netra.degradation.reason"] == "circuit_open"
    assert not any(k.startswith("gen_ai.") for c in calls for k in (c.attributes or {}))
    exported = repr([(s.attributes, s.events, s.status.description) for s in finished])
    assert FAKE_KEY not in exported and FAKE_KEY not in repr(reader.get_metrics_data())


async def test_opentelemetry_without_spans_or_gen_ai(clock: FakeClock) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    registry = ServiceRegistry(
        [
            Dependency(
                "db",
                "critical",
                strategies=[OpenTelemetryOptions(meter_provider=meters, spans=False)],
            )
        ],
        clock=clock,
    )

    async def query() -> int:
        return 1

    assert await registry.pipeline("db").execute(query) == 1
    found = points(reader)
    assert [dict(p.attributes) for p in found["netra.dependency.operation.duration"]] == [
        {"netra.dependency.name": "db"}
    ]
    assert "gen_ai.client.operation.duration" not in found


async def test_prometheus_exposition(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    collectors = CollectorRegistry()
    prom = PrometheusListener(registry=collectors)
    telemetry = CompositeListener([prom, LoggingListener(logging.getLogger("test.netra"))])
    registry = ServiceRegistry(
        [Dependency("llm", "important", strategies=[prom.timing(), breaker()])],
        clock=clock,
        telemetry=telemetry,
    )
    prom.observe(registry)
    pipeline = registry.pipeline("llm")
    with caplog.at_level(logging.DEBUG):
        await pipeline.execute(create, model="m", messages=[])
        for _ in range(3):
            with suppress(PermissionError, BrokenCircuitError):
                await pipeline.execute(broken, model="m", messages=[])

    text = generate_latest(collectors).decode()
    assert (
        'netra_rejections_total{criticality="important",dependency="llm",kind="circuit_open"} 1.0'
        in text
    )
    assert (
        'netra_circuit_breaker_transitions_total{dependency="llm",from_state="closed",'
        'to_state="open"} 1.0' in text
    )
    assert 'netra_circuit_breaker_state{dependency="llm",state="open"} 1.0' in text
    assert 'netra_circuit_breaker_state{dependency="llm",state="closed"} 0.0' in text
    assert 'netra_health_status{dependency="",status="warn"} 1.0' in text
    assert (
        'netra_dependency_operation_duration_seconds_count{dependency="llm",error_type=""} 1.0'
        in text
    )
    assert (
        'netra_dependency_operation_duration_seconds_count{dependency="llm",'
        'error_type="circuit_open"} 1.0' in text
    )
    assert 'error_type="PermissionError"' in text
    assert FAKE_KEY not in text and FAKE_KEY not in caplog.text
    assert "circuit_opened" in caplog.text  # structured logs carry the same events

    app = FastAPI()
    app.mount("/metrics", metrics_app(collectors))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get("/metrics/")
    assert response.status_code == 200 and "netra_events_total" in response.text
    records = [r for r in caplog.records if r.name == "test.netra"]
    fields = records[-1].__dict__["netra"]
    assert {"dependency", "strategy", "netra_event"} <= set(fields)
    json.dumps(fields, default=str)  # structured fields serialise


async def test_structured_log_fields(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    logs = LoggingListener(logging.getLogger("test.fields"))
    registry = ServiceRegistry(
        [Dependency("analytics", "optional", strategies=[breaker()])], clock=clock, telemetry=logs
    )
    with caplog.at_level(logging.INFO, "test.fields"):
        for _ in range(3):
            with suppress(PermissionError):
                await registry.pipeline("analytics").execute(broken, model="m", messages=[])
    opened = next(
        r for r in caplog.records if r.__dict__["netra"]["netra_event"] == "circuit_opened"
    )
    fields = opened.__dict__["netra"]
    assert fields["dependency"] == "analytics"
    assert fields["criticality"] == "optional"
    assert fields["breaker_state"] == "open"
    assert fields["error_type"] == "PermissionError"
    assert FAKE_KEY not in caplog.text
