"""What a rejected caller gets: a fresh error with retry_after, a degradation mark, telemetry."""

from __future__ import annotations

import pytest

from netra_resilience import BrokenCircuitError, IsolatedCircuitError, ResilienceContext
from netra_resilience.circuit_breaker import CircuitBreakerStrategy
from netra_resilience.telemetry import Severity
from netra_resilience.testing import FakeClock, RecordingListener
from tests.unit.circuit_breaker.helpers import SECRET, build, call, fail, ok


async def test_rejection_carries_retry_after_and_dependency(clock: FakeClock) -> None:
    pipeline, _ = build(clock, minimum_throughput=2, break_duration=30)
    await fail(pipeline, 2)
    await clock.advance(10)
    with pytest.raises(BrokenCircuitError) as info:
        await pipeline.execute(ok)
    assert info.value.retry_after == 20.0
    assert info.value.dependency == "llm"
    assert not isinstance(info.value, IsolatedCircuitError)


async def test_rejection_marks_degradation(clock: FakeClock) -> None:
    pipeline, _ = build(clock, minimum_throughput=2)
    await fail(pipeline, 2)
    context = ResilienceContext("chat")
    await call(pipeline, context)
    assert context.degradation.as_dict() == {"llm": "circuit_open"}


async def test_each_rejection_is_a_fresh_exception_without_a_chain(clock: FakeClock) -> None:
    pipeline, _ = build(clock, minimum_throughput=2)
    await fail(pipeline, 2)
    first, second = (await call(pipeline)).exception, (await call(pipeline)).exception
    assert isinstance(first, BrokenCircuitError)
    assert first is not second
    assert first.__traceback__ is None
    assert first.__cause__ is None and first.__context__ is None
    assert SECRET not in str(first)


async def test_rejection_says_what_opened_the_circuit_by_type_only(clock: FakeClock) -> None:
    pipeline, _ = build(clock, minimum_throughput=2, break_duration=30)
    await fail(pipeline, 2)
    with pytest.raises(BrokenCircuitError) as info:
        await pipeline.execute(ok)
    assert info.value.opened_by == "UpstreamError"
    assert str(info.value) == (
        "circuit 'llm' is open (dependency llm, retry after 30 s, opened by UpstreamError)"
    )
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_opened_by_that_is_not_a_type_name_is_not_printed() -> None:
    exc = BrokenCircuitError(dependency="llm")
    exc.opened_by = "boom: sk-secret in a message"
    assert str(exc) == "circuit is open (dependency llm)"


async def test_rejection_telemetry_only_when_enabled(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, _ = build(clock, listener, minimum_throughput=2)
    await fail(pipeline, 2)
    await call(pipeline, ResilienceContext("chat"))
    (rejected,) = listener.named("circuit_rejected")
    assert rejected.severity is Severity.DEBUG
    assert rejected.operation_key == "chat"
    assert rejected.args["retry_after"] == 15.0
    assert rejected.source.pipeline == "llm"
    assert rejected.source.strategy == "circuit_breaker"


async def test_state_change_telemetry_severities_and_safe_args(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, _ = build(clock, listener, minimum_throughput=2)
    await fail(pipeline, 2)
    await clock.advance(15)
    await call(pipeline)
    events = [(e.name, e.severity) for e in listener.events if e.name != "circuit_rejected"]
    assert events == [
        ("circuit_opened", Severity.ERROR),
        ("circuit_half_opened", Severity.WARNING),
        ("circuit_closed", Severity.INFO),
    ]
    opened = listener.named("circuit_opened")[0]
    assert opened.args["error_type"] == "UpstreamError"
    assert opened.args["failure_ratio"] == 1.0
    assert opened.args["retry_after"] == 15.0
    assert opened.args["state"] == "open" and opened.args["previous_state"] == "closed"
    assert all(SECRET not in repr(e.args) for e in listener.events)


async def test_last_failure_type_is_the_type_name_never_the_message(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2)
    assert breaker.last_failure_type is None
    await fail(pipeline, 2)
    assert breaker.last_failure_type == "UpstreamError"


def test_strategy_declares_it_never_blocks(clock: FakeClock) -> None:
    pipeline, breaker = build(clock)
    assert breaker.may_block is False
    assert breaker.kind == "circuit_breaker"
    assert breaker.name == "llm"
    assert pipeline.find(CircuitBreakerStrategy) is breaker
    assert "closed" in repr(breaker)
