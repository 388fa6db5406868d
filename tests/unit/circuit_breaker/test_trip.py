"""When the breaker opens: failure ratio, minimum throughput, slow calls, windows, results."""

# The state property is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="comparison-overlap, unreachable"

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from netra_resilience import BrokenCircuitError
from netra_resilience.circuit_breaker import CircuitState
from netra_resilience.predicates import handle, handle_result
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from tests.unit.circuit_breaker.helpers import Gate, build, fail, succeed


async def test_trips_only_once_minimum_throughput_is_reached(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=10)
    await fail(pipeline, 9)  # 100% failures but only 9 calls
    assert breaker.state is CircuitState.CLOSED
    await fail(pipeline)
    assert breaker.state is CircuitState.OPEN
    assert breaker.health.throughput == 10


async def test_ratio_below_threshold_does_not_trip(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, failure_ratio=0.5, minimum_throughput=10)
    await succeed(pipeline, 6)
    await fail(pipeline, 5)  # 5/11 < 0.5
    assert breaker.state is CircuitState.CLOSED
    assert breaker.health.failure_ratio == pytest.approx(5 / 11)
    await fail(pipeline)  # 6/12 >= 0.5: the comparison is >=, like Polly
    assert breaker.state is CircuitState.OPEN


async def test_a_success_never_trips(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, failure_ratio=0.5, minimum_throughput=10)
    await fail(pipeline, 5)
    await succeed(pipeline, 5)  # 5/10 at the threshold, but decided on failures only
    assert breaker.state is CircuitState.CLOSED
    await fail(pipeline)
    assert breaker.state is CircuitState.OPEN


async def test_old_failures_leave_the_time_window(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=4, sampling_duration=30)
    await fail(pipeline, 3)
    await clock.advance(31)
    await fail(pipeline)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.health.throughput == 1


async def test_count_window_keeps_failures_regardless_of_time(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=4, window="count", window_size=10)
    await fail(pipeline, 3)
    await clock.advance(3600)
    await fail(pipeline)
    assert breaker.state is CircuitState.OPEN


async def test_count_window_caps_minimum_throughput_at_window_size(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=10, window="count", window_size=3)
    await fail(pipeline, 2)
    assert breaker.state is CircuitState.CLOSED
    await fail(pipeline)
    assert breaker.state is CircuitState.OPEN


async def test_count_window_forgets_calls_beyond_its_size(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=4, window="count", window_size=4)
    await fail(pipeline, 3)
    await succeed(pipeline, 4)  # pushes all three failures out
    await fail(pipeline)
    assert breaker.health.failures == 1
    assert breaker.state is CircuitState.CLOSED


async def test_slow_calls_trip_even_when_they_succeed(clock: FakeClock) -> None:
    pipeline, breaker = build(
        clock, minimum_throughput=4, slow_call_duration=1.0, slow_call_ratio=0.5
    )

    async def takes(seconds: float) -> str:
        await clock.sleep(seconds)
        return "ok"

    await advance_until_done(clock, pipeline.execute(takes, 1.0))  # == threshold: not slow
    await succeed(pipeline)
    await advance_until_done(clock, pipeline.execute(takes, 2.0))
    assert breaker.state is CircuitState.CLOSED  # 1 slow of 3 calls
    assert breaker.health.slow_calls == 1
    await advance_until_done(clock, pipeline.execute(takes, 2.0))  # 2/4 >= 0.5
    assert breaker.state is CircuitState.OPEN
    assert breaker.last_failure_type is None  # opened by slowness, not by an error


async def test_slow_call_timing_is_off_without_a_threshold(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2)

    async def slow() -> str:
        await clock.sleep(100)
        return "ok"

    for _ in range(3):
        await advance_until_done(clock, pipeline.execute(slow))
    assert breaker.health.slow_calls == 0
    assert breaker.state is CircuitState.CLOSED


@dataclass
class Response:
    status_code: int


async def test_results_can_count_as_failures(clock: FakeClock) -> None:
    pipeline, breaker = build(
        clock,
        minimum_throughput=2,
        failure_ratio=0.6,
        should_handle=handle(ConnectionError) | handle_result(lambda r: r.status_code >= 500),
    )

    async def respond(status: int) -> Response:
        return Response(status)

    assert (await pipeline.execute(respond, 200)).status_code == 200
    assert (await pipeline.execute(respond, 503)).status_code == 503  # result passes through
    assert breaker.state is CircuitState.CLOSED
    await pipeline.execute(respond, 502)  # 2/3 >= 0.6
    assert breaker.state is CircuitState.OPEN
    assert breaker.last_failure_type == "result:Response"


async def test_unhandled_exceptions_count_as_successes(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, should_handle=handle(ConnectionError))

    async def bug() -> None:
        raise KeyError("not the dependency's fault")

    for _ in range(5):
        with pytest.raises(KeyError):
            await pipeline.execute(bug)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.health.failures == 0
    assert breaker.health.throughput == 5


async def test_a_broken_predicate_neither_fails_the_call_nor_trips(clock: FakeClock) -> None:
    def predicate(outcome: object) -> bool:
        raise RuntimeError("bad predicate")

    pipeline, breaker = build(clock, minimum_throughput=2, should_handle=predicate)
    await fail(pipeline, 3)
    assert breaker.state is CircuitState.CLOSED


async def test_cancellation_while_closed_is_not_recorded(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2)
    gate = Gate()
    tasks = [asyncio.create_task(pipeline.execute(gate)) for _ in range(3)]
    await clock.settle()
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert breaker.health.throughput == 0  # neither failures nor successes
    assert breaker.state is CircuitState.CLOSED


async def test_metrics_reset_when_the_circuit_closes(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=4)
    await succeed(pipeline, 2)
    await fail(pipeline, 2)
    assert breaker.state is CircuitState.OPEN
    await clock.advance(15)
    await succeed(pipeline)  # the probe closes the circuit
    assert breaker.state is CircuitState.CLOSED
    assert breaker.health.throughput == 0
    await fail(pipeline, 3)  # needs a full minimum throughput again
    assert breaker.state is CircuitState.CLOSED


async def test_open_rejects_without_calling(clock: FakeClock, listener: RecordingListener) -> None:
    pipeline, _ = build(clock, listener, minimum_throughput=2)
    await fail(pipeline, 2)
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(counted)
    assert calls == 0
