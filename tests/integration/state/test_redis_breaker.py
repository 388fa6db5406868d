"""Breakers sharing one circuit through a real Redis, and Redis failing under them."""

# Breaker state is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="unreachable"

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from netra_resilience import BrokenCircuitError, Pipeline, PipelineBuilder
from netra_resilience.circuit_breaker import (
    CallReport,
    CircuitBreakerOptions,
    CircuitPolicy,
    CircuitState,
    CircuitStateChange,
    InMemoryCircuitStateStore,
    Permit,
)
from netra_resilience.context import ResilienceContext
from netra_resilience.integrations.redis import (
    RedisCircuitStateStore,
    redis_breaker,
    redis_client,
)
from netra_resilience.testing import FakeClock
from tests.integration.state import _procs
from tests.servers import RedisServer


@pytest.fixture
async def stores(
    redis_server: RedisServer, namespace: str, clock: FakeClock
) -> AsyncIterator[list[RedisCircuitStateStore]]:
    """Two replicas: separate clients, separate stores, the same Redis and fake clock."""
    made = [store_on(redis_client(redis_server.url), namespace, clock) for _ in range(2)]
    yield made
    for store in made:
        await store.aclose()
        await store.client.aclose()


def store_on(
    client: Any, namespace: str, clock: FakeClock | None = None, **breaker: Any
) -> RedisCircuitStateStore:
    """A replica's store, behind a breaker of its own for its Redis client."""
    gate = redis_breaker(client, clock=clock, **breaker)
    return RedisCircuitStateStore(client, breaker=gate, prefix=f"{namespace}:", clock=clock)


def breaker(store: Any, clock: FakeClock, **overrides: Any) -> Pipeline:
    options: dict[str, Any] = {"minimum_throughput": 4, "break_duration": 10.0}
    options.update(overrides)
    return (
        PipelineBuilder("llm", clock=clock)
        .add_circuit_breaker(CircuitBreakerOptions(store=store, **options))
        .build()
    )


async def fail() -> None:
    raise ConnectionError("provider down")


async def ok() -> str:
    return "ok"


async def outcome_of(pipeline: Pipeline, fn: Any = ok) -> str:
    try:
        return str(await pipeline.execute(fn))
    except BrokenCircuitError:
        return "rejected"
    except ConnectionError:
        return "failed"


async def test_failures_seen_by_one_replica_open_the_circuit_for_the_other(
    stores: list[RedisCircuitStateStore], clock: FakeClock
) -> None:
    a, b = (breaker(store, clock) for store in stores)
    assert [await outcome_of(a, fail) for _ in range(4)] == ["failed"] * 4
    with pytest.raises(BrokenCircuitError) as info:
        await b.execute(ok)
    assert info.value.retry_after == pytest.approx(10.0)
    assert info.value.dependency == "llm"

    # One global half-open probe: ten concurrent calls across both replicas, one admitted.
    await clock.advance(10.0)
    release = asyncio.Event()

    async def held() -> str:
        await release.wait()
        return "probe"

    calls = [asyncio.ensure_future(outcome_of(p, held)) for p in (a, b) * 5]
    while sum(c.done() for c in calls) < 9:  # the nine rejections come back from Redis
        await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED, timeout=5)
    release.set()
    results = await asyncio.gather(*calls)
    assert sorted(results) == ["probe"] + ["rejected"] * 9
    assert await outcome_of(a) == "ok" and await outcome_of(b) == "ok"  # closed for both


async def test_a_failed_or_abandoned_probe_reopens_for_everyone(
    stores: list[RedisCircuitStateStore], clock: FakeClock
) -> None:
    a, b = (breaker(store, clock) for store in stores)
    for _ in range(4):
        await outcome_of(a, fail)
    await clock.advance(10.0)
    assert await outcome_of(b, fail) == "failed"  # b's probe fails
    assert await outcome_of(a) == "rejected"
    await clock.advance(10.0)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    probe = asyncio.ensure_future(a.execute(hang))
    await started.wait()
    probe.cancel()  # cancelled probe: back to open, not wedged half-open
    with pytest.raises(asyncio.CancelledError):
        await probe
    snapshot = await stores[1].snapshot("llm", CircuitBreakerOptions(break_duration=10).policy())
    assert snapshot.state is CircuitState.OPEN


def _key(change: CircuitStateChange) -> tuple[Any, ...]:
    h = change.health
    return (
        change.old_state,
        change.new_state,
        change.reason,
        (h.throughput, h.failures, h.slow_calls),
        change.epoch,
        None if change.break_duration is None else round(change.break_duration, 6),
        change.half_open_attempts,
        change.failure_type,
    )


def _same_permit(redis: Permit, memory: Permit) -> None:
    assert (redis.admitted, redis.state, redis.epoch) == (
        memory.admitted,
        memory.state,
        memory.epoch,
    )
    if memory.retry_after is None:
        assert redis.retry_after is None
    else:
        assert redis.retry_after == pytest.approx(memory.retry_after, abs=1e-6)
    assert [_key(c) for c in redis.changes] == [_key(c) for c in memory.changes]


@pytest.mark.parametrize(
    "policy",
    [
        CircuitPolicy(
            minimum_throughput=4,
            sampling_duration=10.0,
            break_duration=5.0,
            permitted_calls_in_half_open=2,
            half_open_max_wait=3.0,
            slow_call_ratio=0.5,
        ),
        CircuitPolicy(
            window="count",
            window_size=6,
            minimum_throughput=3,
            break_duration=4.0,
            half_open_max_wait=2.0,
        ),
    ],
    ids=["time-window", "count-window"],
)
async def test_the_lua_circuit_matches_the_in_process_controller_step_by_step(
    redis_server: RedisServer, namespace: str, clock: FakeClock, policy: CircuitPolicy
) -> None:
    """600 random steps (acquire, record, abandon, time passing) on both stores, same answers."""
    client = redis_client(redis_server.url)
    remote = store_on(client, namespace, clock)
    memory = InMemoryCircuitStateStore(clock=clock)
    rng = random.Random(20261122)
    held: list[tuple[Permit, Permit]] = []
    transitions: set[tuple[CircuitState, CircuitState]] = set()
    try:
        for _ in range(600):
            roll = rng.random()
            if roll < 0.45:
                pr, pm = await remote.acquire("k", policy), await memory.acquire("k", policy)
                _same_permit(pr, pm)
                if pm.admitted:
                    held.append((pr, pm))
            elif roll < 0.85 and held:
                pr, pm = held.pop(rng.randrange(len(held)))
                report = CallReport(
                    failed=rng.random() < 0.55,
                    slow=rng.random() < 0.2,
                    abandoned=rng.random() < 0.05,
                    break_duration=policy.break_duration,
                    failure_type="ConnectionError",
                )
                cr = await remote.record("k", policy, pr, report)
                cm = await memory.record("k", policy, pm, report)
                assert [_key(c) for c in cr] == [_key(c) for c in cm]
                transitions.update((c.old_state, c.new_state) for c in cm)
            else:
                await clock.advance(rng.choice([0.2, 0.7, 1.5, 3.0, 6.0]))
                sr, sm = await remote.snapshot("k", policy), await memory.snapshot("k", policy)
                assert (sr.state, sr.health, sr.last_failure_type) == (
                    sm.state,
                    sm.health,
                    sm.last_failure_type,
                )
        # The walk went through every automatic transition.
        assert {(CircuitState.CLOSED, CircuitState.OPEN)} <= transitions
        assert (CircuitState.HALF_OPEN, CircuitState.CLOSED) in transitions
        assert (CircuitState.HALF_OPEN, CircuitState.OPEN) in transitions
    finally:
        await remote.aclose()
        await client.aclose()


async def test_manual_isolate_and_close_are_shared(
    stores: list[RedisCircuitStateStore], clock: FakeClock
) -> None:
    a, b = (breaker(store, clock) for store in stores)
    policy = CircuitBreakerOptions().policy()
    await stores[0].isolate("llm", policy)
    assert await outcome_of(b) == "rejected"
    await stores[1].close("llm", policy)
    assert await outcome_of(a) == "ok"


async def test_redis_down_the_breaker_keeps_protecting_locally_then_resyncs(
    fault_redis: RedisServer, namespace: str, clock: FakeClock
) -> None:
    clients = [redis_client(fault_redis.url, connect_timeout=0.2) for _ in range(2)]
    stores = [store_on(c, namespace, clock, retry_interval=1.0) for c in clients]
    a, b = (breaker(store, clock) for store in stores)
    try:
        assert await outcome_of(a) == "ok"
        fault_redis.kill()
        ctx = ResilienceContext("call")
        assert await a.execute(ok, context=ctx) == "ok"  # Redis refused: local circuit, no error
        assert ctx.degradation.reason("redis") == "fallback_memory"
        assert stores[0].breaker.available  # one refusal is not an outage yet
        # The dependency fails during the Redis outage: the local circuit still trips
        # (1 success + 3 failures: 75 % of 4 calls).
        assert [await outcome_of(a, fail) for _ in range(5)] == ["failed"] * 3 + ["rejected"] * 2
        assert not stores[0].breaker.available  # three refusals in a row: Redis is skipped

        fault_redis.start()
        await clock.advance(1.0)
        assert await stores[0].breaker.probe_now()
        await stores[0].wait_resync()
        # Merged into Redis: b, which never saw a failure, now rejects too.
        assert await outcome_of(b) == "rejected"
    finally:
        for store, client in zip(stores, clients, strict=True):
            await store.aclose()
            await client.aclose()


async def test_sigstopped_redis_costs_one_bounded_wait_then_calls_go_local(
    fault_redis: RedisServer, namespace: str
) -> None:
    client = redis_client(fault_redis.url)
    store = store_on(client, namespace, timeout=0.05)
    pipeline = (
        PipelineBuilder("llm")
        .add_circuit_breaker(CircuitBreakerOptions(store=store, minimum_throughput=4))
        .build()
    )
    try:
        assert await pipeline.execute(ok) == "ok"
        fault_redis.pause()
        results = await asyncio.gather(*(pipeline.execute(ok) for _ in range(50)))
        assert results == ["ok"] * 50  # calls go on; each waited at most the store timeout
        assert not store.breaker.available
        assert [await pipeline.execute(ok) for _ in range(50)] == ["ok"] * 50  # no wait now
        fault_redis.resume()
        assert await store.breaker.probe_now()
        assert await pipeline.execute(ok) == "ok"
    finally:
        fault_redis.resume()
        await store.aclose()
        await client.aclose()


async def test_processes_share_one_circuit_and_one_global_probe(
    redis_server: RedisServer, process_pool: ProcessPoolExecutor, namespace: str
) -> None:
    url, prefix = redis_server.url, f"{namespace}:"

    def run(fn: Any, *args: Any) -> asyncio.Future[Any]:
        return asyncio.wrap_future(process_pool.submit(fn, *args))

    # Process 1 sees the failures: four fail, the circuit opens, the fifth is rejected.
    seen = await run(_procs.breaker_failures, url, prefix, "search", 5)
    assert seen == ["failed"] * 4 + ["rejected"]

    # This process (another replica, its own client) finds the circuit open.
    client = redis_client(url)
    store = RedisCircuitStateStore(
        client, breaker=redis_breaker(client, timeout=_procs.STORE_TIMEOUT), prefix=prefix
    )
    here = (
        PipelineBuilder("search")
        .add_circuit_breaker(CircuitBreakerOptions(store=store, **_procs.BREAKER))
        .build()
    )
    try:
        with pytest.raises(BrokenCircuitError):
            await here.execute(ok)
        # End the break now (as if 30 s had passed) and race four processes for the probe.
        snap = await store.snapshot("search", CircuitBreakerOptions(**_procs.BREAKER).policy())
        assert snap.state is CircuitState.OPEN
        raw_epoch = await client.hget(f"{{{prefix}search}}:s", "ep")
        assert raw_epoch is not None
        epoch = int(raw_epoch)
        assert await store.set_break("search", epoch, 0.0)

        admitted, release = f"{namespace}:admitted", f"{namespace}:release"
        attempts = [
            run(_procs.breaker_attempt, url, prefix, "search", admitted, release) for _ in range(4)
        ]
        assert await client.blpop([admitted], timeout=30) is not None  # one probe admitted
        done, _ = await asyncio.wait(attempts, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        while len(done) < 3:
            more, _ = await asyncio.wait(
                [a for a in attempts if not a.done()], timeout=30, return_when="FIRST_COMPLETED"
            )
            done |= more
        assert [a.result() for a in done] == ["rejected"] * 3
        with pytest.raises(BrokenCircuitError):
            await here.execute(ok)  # and this process too: the one slot is taken
        await client.rpush(release, "go")
        assert sorted(await asyncio.gather(*attempts)) == ["probe"] + ["rejected"] * 3
        assert await here.execute(ok) == "ok"  # the probe succeeded: closed everywhere
        assert await client.llen(admitted) == 0
    finally:
        await store.aclose()
        await client.aclose()


async def test_a_break_duration_generator_retimes_the_shared_break(
    stores: list[RedisCircuitStateStore], clock: FakeClock
) -> None:
    a = breaker(stores[0], clock, break_duration_generator=lambda args: 2.5)
    b = breaker(stores[1], clock)
    for _ in range(4):
        await outcome_of(a, fail)
    with pytest.raises(BrokenCircuitError) as info:
        await b.execute(ok)
    assert info.value.retry_after == pytest.approx(2.5)  # written back with set_break
    await clock.advance(2.5)
    assert await outcome_of(b) == "ok"  # b's probe closes it
