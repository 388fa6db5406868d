"""Half-open: lazy transition, exactly N probes, probe verdicts, cancelled and hung probes."""

# The state property is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="comparison-overlap, unreachable"

from __future__ import annotations

import asyncio

import pytest

from netra_resilience import BrokenCircuitError
from netra_resilience.circuit_breaker import CircuitState
from netra_resilience.testing import FakeClock, RecordingListener
from tests.unit.circuit_breaker.helpers import Gate, build, call, fail, succeed


async def test_open_to_half_open_is_lazy(clock: FakeClock, listener: RecordingListener) -> None:
    pipeline, breaker = build(clock, listener, minimum_throughput=2, break_duration=15)
    await fail(pipeline, 2)
    await clock.advance(14.9)
    assert breaker.state is CircuitState.OPEN
    await clock.advance(0.1)
    assert "circuit_half_opened" not in listener.names()  # no timer fired
    assert breaker.state is CircuitState.HALF_OPEN  # reading it makes the transition
    assert listener.names().count("circuit_half_opened") == 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert listener.names().count("circuit_half_opened") == 1


@pytest.mark.parametrize("permitted", [1, 3])
async def test_half_open_admits_exactly_n_concurrent_probes(
    clock: FakeClock, permitted: int
) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, permitted_calls_in_half_open=permitted)
    await fail(pipeline, 2)
    await clock.advance(15)
    gate = Gate()
    tasks = [asyncio.ensure_future(pipeline.execute_outcome(gate)) for _ in range(20)]
    await clock.settle()
    assert gate.entered == permitted
    rejected = [t.result() for t in tasks if t.done()]
    assert len(rejected) == 20 - permitted
    assert all(isinstance(o.exception, BrokenCircuitError) for o in rejected)
    assert breaker.state is CircuitState.HALF_OPEN
    gate.release()
    outcomes = await asyncio.gather(*tasks)
    assert sum(o.succeeded for o in outcomes) == permitted
    assert breaker.state is CircuitState.CLOSED


async def test_probe_success_closes(clock: FakeClock, listener: RecordingListener) -> None:
    pipeline, breaker = build(clock, listener, minimum_throughput=2)
    await fail(pipeline, 2)
    await clock.advance(15)
    assert (await call(pipeline)).succeeded
    assert breaker.state is CircuitState.CLOSED
    assert listener.names() == ["circuit_opened", "circuit_half_opened", "circuit_closed"]


async def test_probe_failure_reopens_with_a_new_break(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, break_duration=15)
    await fail(pipeline, 2)
    await clock.advance(15)
    await fail(pipeline)  # the probe fails
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == 15.0  # counted from the re-open, not the first break
    await clock.advance(14)
    assert isinstance((await call(pipeline)).exception, BrokenCircuitError)
    await clock.advance(1)
    assert (await call(pipeline)).succeeded
    assert breaker.state is CircuitState.CLOSED


async def test_several_probes_close_only_when_all_are_done(clock: FakeClock) -> None:
    pipeline, breaker = build(
        clock, minimum_throughput=2, permitted_calls_in_half_open=3, failure_ratio=0.5
    )
    await fail(pipeline, 2)
    await clock.advance(15)
    await succeed(pipeline, 2)
    assert breaker.state is CircuitState.HALF_OPEN
    await fail(pipeline)  # 1 failure of 3 probes: 0.33 < 0.5
    assert breaker.state is CircuitState.CLOSED


async def test_several_probes_reopen_once_the_ratio_is_reached(clock: FakeClock) -> None:
    pipeline, breaker = build(
        clock, minimum_throughput=2, permitted_calls_in_half_open=3, failure_ratio=0.5
    )
    await fail(pipeline, 2)
    await clock.advance(15)
    await fail(pipeline)
    assert breaker.state is CircuitState.HALF_OPEN  # 1/3 cannot decide yet
    await fail(pipeline)  # 2/3 >= 0.5 whatever the third probe does
    assert breaker.state is CircuitState.OPEN


async def test_single_probe_any_handled_failure_reopens(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, failure_ratio=1.0)
    await fail(pipeline, 2)
    await clock.advance(15)
    await fail(pipeline)
    assert breaker.state is CircuitState.OPEN


async def test_unhandled_exception_in_a_probe_counts_as_success(clock: FakeClock) -> None:
    from netra_resilience.predicates import handle

    pipeline, breaker = build(clock, minimum_throughput=2, should_handle=handle(ConnectionError))
    await fail(pipeline, 2)
    await clock.advance(15)

    async def bug() -> None:
        raise KeyError("ours")

    with pytest.raises(KeyError):
        await pipeline.execute(bug)
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_probe_goes_back_to_open(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, breaker = build(clock, listener, minimum_throughput=2)
    await fail(pipeline, 2)
    await clock.advance(15)
    gate = Gate()
    probe = asyncio.create_task(pipeline.execute(gate))
    await clock.settle()
    assert gate.entered == 1
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is CircuitState.OPEN  # never counted as a success
    assert breaker.retry_after == 15.0
    opened = listener.named("circuit_opened")
    assert [e.args["reason"] for e in opened] == ["failure_ratio", "probe_abandoned"]
    await clock.advance(15)
    assert (await call(pipeline)).succeeded  # a fresh probe is admitted after the break
    assert breaker.state is CircuitState.CLOSED


async def test_one_cancelled_probe_of_several_reopens(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, permitted_calls_in_half_open=3)
    await fail(pipeline, 2)
    await clock.advance(15)
    gate = Gate()
    probes = [asyncio.create_task(pipeline.execute(gate)) for _ in range(3)]
    await clock.settle()
    probes[0].cancel()
    await clock.settle()
    assert breaker.state is CircuitState.OPEN
    gate.release()
    await asyncio.gather(*probes, return_exceptions=True)
    assert breaker.state is CircuitState.OPEN  # the others' late successes do not close it


async def test_hung_probe_past_max_wait_reopens(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, breaker = build(
        clock, listener, minimum_throughput=2, break_duration=15, half_open_max_wait=5
    )
    await fail(pipeline, 2)
    await clock.advance(15)
    hung = Gate()
    probe = asyncio.create_task(pipeline.execute(hung))
    await clock.settle()
    await clock.advance(4.9)
    assert breaker.state is CircuitState.HALF_OPEN
    rejected = await call(pipeline)
    assert isinstance(rejected.exception, BrokenCircuitError)
    assert rejected.exception.retry_after == pytest.approx(0.1)  # the probe's verdict is due
    await clock.advance(0.1)
    outcome = await call(pipeline)  # the hung probe is abandoned: back to OPEN, new break
    assert isinstance(outcome.exception, BrokenCircuitError)
    assert breaker.state is CircuitState.OPEN
    assert outcome.exception.retry_after == 15.0
    await clock.advance(15)
    assert (await call(pipeline)).succeeded  # next probe admitted after the break
    assert breaker.state is CircuitState.CLOSED
    hung.release()
    assert await probe == "ok"  # its late result changes nothing
    assert breaker.state is CircuitState.CLOSED
    assert breaker.health.throughput == 0
    assert listener.names(strategy="circuit_breaker") == [
        "circuit_opened",
        "circuit_half_opened",
        "circuit_rejected",
        "circuit_opened",
        "circuit_rejected",
        "circuit_half_opened",
        "circuit_closed",
    ]


async def test_half_open_max_wait_defaults_to_break_duration(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2, break_duration=10)
    await fail(pipeline, 2)
    await clock.advance(10)
    hung = Gate()
    probe = asyncio.create_task(pipeline.execute(hung))
    await clock.settle()
    await clock.advance(9.9)
    assert breaker.state is CircuitState.HALF_OPEN
    await clock.advance(0.1)
    assert breaker.state is CircuitState.OPEN
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe


@pytest.mark.parametrize("timed", [False, True])
async def test_late_results_while_open_only_update_metrics(
    clock: FakeClock, listener: RecordingListener, timed: bool
) -> None:
    pipeline, breaker = build(
        clock,
        listener,
        minimum_throughput=2,
        break_duration=15,
        slow_call_duration=60.0 if timed else None,
    )
    slow_failures = Gate(fails=True)
    in_flight = [asyncio.ensure_future(pipeline.execute_outcome(slow_failures)) for _ in range(5)]
    await clock.settle()
    await fail(pipeline, 2)
    assert breaker.state is CircuitState.OPEN
    await clock.advance(5)
    slow_failures.release()
    outcomes = await asyncio.gather(*in_flight)
    assert all(not o.succeeded for o in outcomes)  # they keep their real outcome
    assert listener.names().count("circuit_opened") == 1  # no second opened
    assert breaker.retry_after == 10.0  # the break is not extended
    assert breaker.health.throughput == 7  # but the counts saw them
