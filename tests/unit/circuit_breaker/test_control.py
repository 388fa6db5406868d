"""Manual isolate/close, a control driving many breakers, and the state provider."""

# The state property is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="comparison-overlap, unreachable"

from __future__ import annotations

import pytest

from netra_resilience import InvalidOptionsError, IsolatedCircuitError, PipelineBuilder
from netra_resilience.circuit_breaker import (
    CircuitBreakerControl,
    CircuitBreakerOptions,
    CircuitBreakerStateProvider,
    CircuitState,
    CircuitStateChange,
)
from netra_resilience.testing import FakeClock, RecordingListener
from tests.unit.circuit_breaker.helpers import build, call, fail, succeed


async def test_isolate_rejects_with_isolated_error_until_closed(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, breaker = build(clock, listener)
    await succeed(pipeline, 3)
    await breaker.isolate()
    assert breaker.state is CircuitState.ISOLATED
    outcome = await call(pipeline)
    assert isinstance(outcome.exception, IsolatedCircuitError)
    assert outcome.exception.retry_after is None
    assert outcome.exception.dependency == "llm"
    assert breaker.retry_after is None
    await clock.advance(10**6)  # isolation does not expire
    assert breaker.state is CircuitState.ISOLATED
    await breaker.close()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.health.throughput == 0  # close resets the counts
    assert (await call(pipeline)).succeeded
    opened = listener.named("circuit_opened")[0]
    assert opened.args["manual"] is True and opened.args["state"] == "isolated"
    assert listener.named("circuit_closed")[0].args["manual"] is True


async def test_close_from_open_and_when_already_closed(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, breaker = build(clock, listener, minimum_throughput=2)
    await fail(pipeline, 2)
    await breaker.close()
    assert breaker.state is CircuitState.CLOSED
    await fail(pipeline)
    await breaker.close()  # already closed: counts reset, no second closed event
    assert breaker.health.throughput == 0
    assert listener.names().count("circuit_closed") == 1


async def test_isolating_twice_emits_once(clock: FakeClock, listener: RecordingListener) -> None:
    _, breaker = build(clock, listener)
    await breaker.isolate()
    await breaker.isolate()
    assert listener.names() == ["circuit_opened"]


async def test_isolate_while_probing_ignores_the_probe_result(clock: FakeClock) -> None:
    import asyncio

    from tests.unit.circuit_breaker.helpers import Gate

    pipeline, breaker = build(clock, minimum_throughput=2)
    await fail(pipeline, 2)
    await clock.advance(15)
    gate = Gate()
    probe = asyncio.create_task(pipeline.execute(gate))
    await clock.settle()
    await breaker.isolate()
    gate.release()
    assert await probe == "ok"
    assert breaker.state is CircuitState.ISOLATED


async def test_one_control_drives_many_breakers(clock: FakeClock) -> None:
    control = CircuitBreakerControl()
    _, first = build(clock, name="llm", control=control)
    _, second = build(clock, name="search", control=control)
    assert len(control) == 2
    await control.isolate()
    assert control.is_isolated
    assert first.state is second.state is CircuitState.ISOLATED
    _, late = build(clock, name="late", control=control)  # built while isolated
    assert late.state is CircuitState.ISOLATED
    await control.close()
    assert not control.is_isolated
    assert first.state is second.state is late.state is CircuitState.CLOSED


async def test_control_can_start_isolated(clock: FakeClock) -> None:
    control = CircuitBreakerControl(isolated=True)
    pipeline, breaker = build(clock, control=control)
    assert breaker.state is CircuitState.ISOLATED
    assert isinstance((await call(pipeline)).exception, IsolatedCircuitError)
    await control.close()
    assert (await call(pipeline)).succeeded


async def test_control_reports_failures_after_reaching_every_breaker(clock: FakeClock) -> None:
    class Broken:
        async def isolate(self) -> None:
            raise RuntimeError("store down")

        async def close(self) -> None:
            raise RuntimeError("store down")

    control = CircuitBreakerControl()
    _, breaker = build(clock, control=control)
    broken = Broken()
    control._register(broken)
    with pytest.raises(ExceptionGroup):
        await control.isolate()
    assert breaker.state is CircuitState.ISOLATED


async def test_state_provider_reads_the_bound_breaker(clock: FakeClock) -> None:
    provider = CircuitBreakerStateProvider()
    assert not provider.is_bound
    assert provider.state is CircuitState.CLOSED
    assert provider.retry_after is None and provider.health is None
    assert provider.last_failure_type is None
    pipeline, _ = build(clock, minimum_throughput=2, state_provider=provider)
    assert provider.is_bound
    await fail(pipeline, 2)
    assert provider.state is CircuitState.OPEN
    assert provider.retry_after == 15.0
    assert provider.last_failure_type == "UpstreamError"
    assert provider.health is not None and provider.health.failures == 2
    await clock.advance(15)
    assert provider.state is CircuitState.HALF_OPEN  # lazy, like the strategy


async def test_state_provider_binds_once(clock: FakeClock) -> None:
    options = CircuitBreakerOptions(state_provider=CircuitBreakerStateProvider())
    PipelineBuilder("a", clock=clock).add_circuit_breaker(options).build()
    with pytest.raises(InvalidOptionsError) as info:
        PipelineBuilder("b", clock=clock).add_circuit_breaker(options).build()
    assert info.value.field == "state_provider"


async def test_state_change_carries_context_and_reason(clock: FakeClock) -> None:
    changes: list[CircuitStateChange] = []
    pipeline, _ = build(clock, minimum_throughput=2, on_opened=changes.append)
    await fail(pipeline, 2)
    (change,) = changes
    assert change.dependency == "llm"
    assert change.reason == "failure_ratio" and not change.manual
    assert change.context is not None
    assert change.failure_type == "UpstreamError"
    assert change.break_duration == 15.0
    assert change.health.throughput == 2
