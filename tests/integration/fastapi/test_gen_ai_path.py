"""GenAI telemetry on the documented path: ``ResilientOpenAI`` over the LLM preset.

The request model comes from the call's ``LlmRequest``; a canned reply (no provider answer)
is not a ``gen_ai.client.operation.duration`` point.
"""

from __future__ import annotations

from typing import Any

import httpx2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from netra_resilience import ResilienceContext, standard_llm_pipeline, use_context
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply
from netra_resilience.integrations.otel import GenAI, OpenTelemetryOptions
from netra_resilience.pipeline import PipelineBuilder
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import MESSAGES, Upstream, completion, plain_client


def gen_ai_points(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gen_ai.client.operation.duration"
        for point in metric.data.data_points
    ]


async def test_model_from_the_request_and_no_gen_ai_point_for_a_canned_reply() -> None:
    clock = FakeClock()
    reader = InMemoryMetricReader()
    otel = OpenTelemetryOptions(
        meter_provider=MeterProvider(metric_readers=[reader]), spans=False,
        gen_ai=GenAI(provider="openai"),
    )
    llm_pipeline = standard_llm_pipeline(
        "llm", clock=clock, canned_reply=canned_reply("busy"), attempt_timeout=5, total_timeout=20
    )
    # telemetry outermost, then the preset's strategies
    builder = PipelineBuilder("llm", clock=clock).add(otel)
    for strategy in llm_pipeline.strategies:
        builder.add_strategy(strategy)
    pipeline = builder.build()
    upstream = Upstream(completion("4", model="gpt-x-2026"))
    llm = ResilientOpenAI(plain_client(upstream), pipeline)
    with use_context(ResilienceContext("chat", user_id="u1")):
        await llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
    [point] = gen_ai_points(reader)
    assert point.attributes["gen_ai.request.model"] == "gpt-x"
    assert point.attributes["gen_ai.response.model"] == "gpt-x-2026"

    upstream.script(httpx2.Response(500, json={"error": {}}))
    with use_context(ResilienceContext("chat", user_id="u2")) as context:
        reply = await advance_until_done(
            clock, llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert reply.choices[0].message.content == "busy"
    assert context.degradation.reason("llm") == "canned_reply"
    assert len(gen_ai_points(reader)) == 1  # the canned answer added no GenAI point
