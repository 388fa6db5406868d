"""The store protocol path, run against the in-memory reference store."""

# The state property is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="comparison-overlap, unreachable"

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import BrokenCircuitError, IsolatedCircuitError
from netra_resilience.circuit_breaker import (
    BreakDurationArgs,
    CallReport,
    CircuitBreakerControl,
    CircuitBreakerStrategy,
    CircuitPolicy,
    CircuitState,
    CircuitStateStore,
    InMemoryCircuitStateStore,
    Permit,
)
from netra_resilience.testing import FakeClock, RecordingListener
from tests.unit.circuit_breaker.helpers import Gate, build, call, fail, succeed


def shared(clock: FakeClock, store: Any, listener: RecordingListener | None = None, **kw: Any):
    pipeline, breaker = build(clock, listener, store=store, **kw)
    assert isinstance(breaker, CircuitBreakerStrategy)
    return pipeline, breaker


def test_in_memory_store_implements_the_protocol(clock: FakeClock) -> None:
    assert isinstance(InMemoryCircuitStateStore(clock=clock), CircuitStateStore)


async def test_breakers_sharing_a_store_share_one_circuit(
    clock: FakeClock, listener: RecordingListener
) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    first, a = shared(clock, store, listener, minimum_throughput=4)
    second, b = shared(clock, store, minimum_throughput=4)
    await fail(first, 2)
    await fail(second, 2)  # the shared window reaches 4 calls here
    assert b.state is CircuitState.OPEN
    rejected = await call(first)
    assert isinstance(rejected.exception, BrokenCircuitError)
    assert rejected.exception.retry_after == 15.0
    assert a.state is CircuitState.OPEN and a.retry_after == 15.0
    assert a.last_failure_type is None  # the trip happened in the other breaker
    assert b.last_failure_type == "UpstreamError"
    assert first.find(CircuitBreakerStrategy) is a
    await clock.advance(15)
    assert (await call(second)).succeeded
    assert (await call(first)).succeeded
    snapshot = await a.refresh()
    assert snapshot.state is CircuitState.CLOSED and a.state is CircuitState.CLOSED


async def test_probe_slots_are_global(clock: FakeClock) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    first, _ = shared(clock, store, minimum_throughput=2)
    second, _ = shared(clock, store, minimum_throughput=2)
    await fail(first, 2)
    await clock.advance(15)
    gate = Gate()
    probe = asyncio.create_task(first.execute(gate))
    await clock.settle()
    assert gate.entered == 1
    assert isinstance((await call(second)).exception, BrokenCircuitError)
    gate.release()
    assert await probe == "ok"
    assert (await call(second)).succeeded


async def test_cancelled_shared_probe_reopens(clock: FakeClock) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    pipeline, breaker = shared(clock, store, minimum_throughput=2)
    await fail(pipeline, 2)
    await clock.advance(15)
    probe = asyncio.create_task(pipeline.execute(Gate()))
    await clock.settle()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is CircuitState.OPEN
    assert (await store.snapshot("llm", CircuitPolicy())).state is CircuitState.OPEN


async def test_generator_break_is_written_back(clock: FakeClock) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    seen: list[BreakDurationArgs] = []

    def generator(args: BreakDurationArgs) -> float:
        seen.append(args)
        return 40.0

    pipeline, breaker = shared(
        clock, store, minimum_throughput=2, break_duration_generator=generator
    )
    await fail(pipeline, 2)
    assert seen[0].failure_count == 2 and seen[0].half_open_attempts == 0
    outcome = await call(pipeline)
    assert isinstance(outcome.exception, BrokenCircuitError)
    assert outcome.exception.retry_after == 40.0
    assert breaker.retry_after == 40.0


async def test_upstream_hint_reaches_the_store(clock: FakeClock) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    pipeline, _ = shared(clock, store, minimum_throughput=2)
    await fail(pipeline, 1)
    await fail(pipeline, 1, retry_after=90)
    outcome = await call(pipeline)
    assert isinstance(outcome.exception, BrokenCircuitError)
    assert outcome.exception.retry_after == 90.0


async def test_events_from_store_steps_are_published(
    clock: FakeClock, listener: RecordingListener
) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    pipeline, breaker = shared(clock, store, listener, minimum_throughput=2)
    changes: list[tuple[CircuitState, CircuitState, str]] = []
    breaker.add_state_listener(lambda o, n, c: changes.append((o, n, c.dependency)))
    await fail(pipeline, 2)
    await clock.advance(15)
    await succeed(pipeline)
    assert listener.names() == ["circuit_opened", "circuit_half_opened", "circuit_closed"]
    assert [c[2] for c in changes] == ["llm"] * 3


async def test_shared_isolate_close_and_control(clock: FakeClock) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    control = CircuitBreakerControl()
    _, a = shared(clock, store, control=control)
    second, b = shared(clock, store)
    await control.isolate()
    assert a.state is CircuitState.ISOLATED
    outcome = await call(second)  # isolated for every breaker on the store
    assert isinstance(outcome.exception, IsolatedCircuitError)
    assert b.state is CircuitState.ISOLATED
    await control.close()
    assert (await call(second)).succeeded


async def test_control_isolated_at_build_holds_a_shared_breaker_locally(
    clock: FakeClock,
) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    control = CircuitBreakerControl(isolated=True)
    pipeline, breaker = shared(clock, store, control=control)
    assert breaker.state is CircuitState.ISOLATED
    assert isinstance((await call(pipeline)).exception, IsolatedCircuitError)
    await control.close()
    assert (await call(pipeline)).succeeded


class FailingStore(InMemoryCircuitStateStore):
    async def acquire(self, key: str, policy: CircuitPolicy) -> Permit:
        raise ConnectionError("redis down")

    async def record(
        self, key: str, policy: CircuitPolicy, permit: Permit, report: CallReport
    ) -> tuple[Any, ...]:
        raise ConnectionError("redis down")


async def test_unreachable_store_lets_calls_through(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline, _ = shared(clock, FailingStore(clock=clock), listener, minimum_throughput=2)
    await fail(pipeline, 5)
    assert (await call(pipeline)).succeeded
    assert listener.names()[0] == "circuit_store_error"


async def test_late_record_after_reopen_is_counted_only(clock: FakeClock) -> None:
    store = InMemoryCircuitStateStore(clock=clock)
    policy = CircuitPolicy(minimum_throughput=2)
    permit = await store.acquire("dep", policy)
    assert permit.admitted and permit.state is CircuitState.CLOSED
    for _ in range(2):
        p = await store.acquire("dep", policy)
        await store.record("dep", policy, p, CallReport(True, break_duration=15))
    late = await store.record("dep", policy, permit, CallReport(True, break_duration=99))
    assert late == ()
    snapshot = await store.snapshot("dep", policy)
    assert snapshot.state is CircuitState.OPEN
    assert snapshot.retry_after == 15.0
    assert snapshot.health.throughput == 3
    assert not await store.set_break("dep", permit.epoch, 1.0)  # stale epoch: ignored
    assert not await store.set_break("other", 0, 1.0)
