"""Per-key pipelines (``PipelineBuilder.build_keyed``): each key its own state, built on first
use, the same behaviour as a pipeline built for that key alone, stateless parts shared."""

from __future__ import annotations

import asyncio
import random

import pytest

from netra_resilience import (
    BrokenCircuitError,
    InvalidOptionsError,
    PipelineBuilder,
    RateLimitRejectedError,
)
from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.rate_limiter import TokenBucketLimiter
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from netra_resilience.timeout import TimeoutStrategy
from tests.unit.retry._support import HANG, Script, Upstream


def per_user(
    clock: FakeClock, listener: RecordingListener | None = None, *, instance: str = ""
) -> PipelineBuilder:
    return (
        PipelineBuilder(
            "llm", instance=instance, clock=clock, random=lambda: 0.5, telemetry=listener
        )
        .add_rate_limiter(rate=1, burst=2)
        .add_timeout(20)
        .add_retry(max_attempts=2, delay=1, should_handle=(Upstream, TimeoutError))
        .add_circuit_breaker(minimum_throughput=2, break_duration=30)
        .add_timeout(5)
    )


async def test_each_key_has_its_own_breaker_and_bucket() -> None:
    clock = FakeClock()
    keyed = per_user(clock).build_keyed()
    alice, bob = keyed.get("alice"), keyed.get("bob")
    assert keyed.get("alice") is alice and len(keyed) == 2 and "bob" in keyed
    assert alice.fused and bob.fused
    await advance_until_done(clock, alice.execute_outcome(Script(Upstream)))  # 2 attempts
    assert alice.find(CircuitBreakerStrategy).state is CircuitState.OPEN  # type: ignore[union-attr]
    outcome = await alice.execute_outcome(Script("ok"))
    assert isinstance(outcome.exception, BrokenCircuitError)
    assert await bob.execute(Script("ok")) == "ok"  # bob's breaker is closed, his bucket full
    assert await bob.execute(Script("ok")) == "ok"
    rejected = await bob.execute_outcome(Script("ok"))
    assert isinstance(rejected.exception, RateLimitRejectedError)  # burst 2 spent


def test_stateless_strategies_are_shared_and_stateful_ones_are_not() -> None:
    keyed = per_user(FakeClock()).build_keyed()
    a, b = keyed.get("a").strategies, keyed.get("b").strategies
    assert a[1] is b[1] and a[2] is b[2] and a[4] is b[4]  # timeouts and the retry
    assert isinstance(a[1], TimeoutStrategy) and a[1].fused  # still fused with its partners
    assert a[0] is not b[0] and a[3] is not b[3]  # limiter (own bucket) and breaker
    assert keyed.get("a").instance == "a"


def test_a_limiter_the_options_hold_stays_shared() -> None:
    shared = TokenBucketLimiter(rate=1, burst=1)
    keyed = PipelineBuilder("x").add_rate_limiter(limiter=shared).build_keyed()
    assert keyed.get("a").strategies[0].limiter is shared  # type: ignore[attr-defined]
    assert keyed.get("b").strategies[0].limiter is shared  # type: ignore[attr-defined]


async def test_a_key_behaves_as_a_pipeline_built_for_it_alone() -> None:
    rng = random.Random(3)
    scripts = [
        [rng.choice(["ok", Upstream, HANG, ValueError]) for _ in range(2)] for _ in range(25)
    ]
    gaps = [rng.choice([0.0, 0.5, 40.0]) for _ in scripts]
    results = []
    for keyed_build in (True, False):
        clock = FakeClock()
        listener = RecordingListener()
        if keyed_build:
            pipeline = per_user(clock, listener).build_keyed().get("carol")
        else:
            pipeline = per_user(clock, listener, instance="carol").build()
        seen = []
        for steps, gap in zip(scripts, gaps, strict=True):
            outcome = await advance_until_done(clock, pipeline.execute_outcome(Script(*steps)))
            exc = outcome.exception
            seen.append((outcome.result, type(exc).__name__, str(exc)))
            await clock.advance(gap)
        events = [(e.name, e.source.strategy, dict(e.args)) for e in listener.events]
        instances = {e.source.instance for e in listener.events if e.source.strategy != "retry"}
        results.append((seen, events, clock.sleeps, clock.timeouts, clock.monotonic()))
        if keyed_build:  # breakers and limiters report the key
            assert "carol" in instances
    assert results[0] == results[1]


def test_keys_live_in_an_lru_and_an_evicted_key_starts_afresh() -> None:
    keyed = per_user(FakeClock()).build_keyed(max_keys=2)
    first = keyed.get("a")
    keyed.get("b")
    keyed.get("a")  # refreshes a
    keyed.get("c")  # evicts b, the oldest
    assert "b" not in keyed and keyed.peek("a") is first and len(keyed) == 2
    assert keyed.get("b") is not None and "a" not in keyed


@pytest.mark.parametrize("max_keys", [1, 3, 8])
def test_eviction_order_is_exactly_least_recently_used(max_keys: int) -> None:
    # Against a reference LRU (an OrderedDict moved on every use): the same key goes each time.
    from collections import OrderedDict

    evicted: list[str] = []
    keyed = per_user(FakeClock()).build_keyed(
        max_keys=max_keys, on_evicted=lambda key, _p: evicted.append(key)
    )
    reference: OrderedDict[str, None] = OrderedDict()
    expected: list[str] = []
    rng = random.Random(max_keys)
    for _ in range(2_000):
        key = f"k{min(int(rng.paretovariate(1.2)), 30)}"  # skewed: some keys come back often
        keyed.get(key)
        if key in reference:
            reference.move_to_end(key)
        else:
            reference[key] = None
            if len(reference) > max_keys:
                expected.append(reference.popitem(last=False)[0])
        assert evicted == expected
    assert set(reference) == {k for k in (f"k{i}" for i in range(31)) if k in keyed}
    assert len(keyed) == len(reference)


def test_options_and_single_use() -> None:
    builder = per_user(FakeClock())
    with pytest.raises(InvalidOptionsError, match="max_keys"):
        builder.build_keyed(max_keys=0)
    builder = per_user(FakeClock())
    builder.build_keyed()
    with pytest.raises(RuntimeError):
        builder.build()


async def test_an_evicted_key_is_reported_and_its_running_call_finishes() -> None:
    clock = FakeClock()
    evicted: list[tuple[str, CircuitState]] = []

    def report(key: str, pipeline: object) -> None:
        breaker = pipeline.find(CircuitBreakerStrategy)  # type: ignore[attr-defined]
        evicted.append((key, breaker.state))

    keyed = per_user(clock).build_keyed(max_keys=1, on_evicted=report)
    alice = keyed.get("alice")
    await advance_until_done(clock, alice.execute_outcome(Script(Upstream)))  # opens alice's
    keyed.get("bob")  # alice goes, open breaker and all, and the application hears of it
    assert evicted == [("alice", CircuitState.OPEN)] and "alice" not in keyed
    assert keyed.get("alice").find(CircuitBreakerStrategy).state is CircuitState.CLOSED  # type: ignore[union-attr]
    # A call in flight on an evicted key's pipeline finishes on that pipeline.
    returned = keyed.peek("alice")
    assert returned is not None
    running = asyncio.ensure_future(returned.execute_outcome(Script(HANG, "late")))
    await asyncio.sleep(0)  # the call is in flight (its first attempt hangs)
    keyed.get("carol")  # evicts the returning alice while her call runs
    assert evicted[-1] == ("alice", CircuitState.CLOSED)
    outcome = await advance_until_done(clock, running)
    assert outcome.result == "late"  # retried after the attempt timeout, on its own pipeline


def test_on_evicted_must_be_callable() -> None:
    with pytest.raises(InvalidOptionsError, match="on_evicted"):
        per_user(FakeClock()).build_keyed(on_evicted="nope")  # type: ignore[arg-type]


async def test_a_state_listener_on_one_key_hears_only_that_key() -> None:
    clock = FakeClock()
    keyed = per_user(clock).build_keyed()
    heard: list[CircuitState] = []
    alice = keyed.get("alice")
    alice.find(CircuitBreakerStrategy).add_state_listener(  # type: ignore[union-attr]
        lambda _old, new, _change: heard.append(new)
    )
    bob = keyed.get("bob")
    await advance_until_done(clock, bob.execute_outcome(Script(Upstream)))  # opens bob's
    assert heard == [] and bob.find(CircuitBreakerStrategy).state is CircuitState.OPEN  # type: ignore[union-attr]
    await advance_until_done(clock, alice.execute_outcome(Script(Upstream)))
    assert heard == [CircuitState.OPEN]


async def test_a_breaker_with_a_control_is_built_per_key_from_its_options() -> None:
    from netra_resilience.circuit_breaker import CircuitBreakerControl

    control = CircuitBreakerControl()
    keyed = (
        PipelineBuilder("x", clock=FakeClock())
        .add_circuit_breaker(control=control, minimum_throughput=2)
        .build_keyed()
    )
    a, b = keyed.get("a"), keyed.get("b")
    await control.isolate()  # reaches every key's breaker: each registered with the control
    for pipeline in (a, b):
        outcome = await pipeline.execute_outcome(Script("ok"))
        assert isinstance(outcome.exception, BrokenCircuitError)


async def test_keyed_and_unkeyed_agree_key_by_key_with_interleaved_keys() -> None:
    """Several keys' calls interleaved through one KeyedPipelines give, per key, what a
    pipeline built for that key alone gives for the same script (outcomes and events)."""
    rng = random.Random(11)
    keys = ["k0", "k1", "k2"]
    plan = [(rng.choice(keys), rng.choice(["ok", Upstream, ValueError])) for _ in range(60)]
    gaps = [rng.choice([0.0, 0.5, 2.0, 40.0]) for _ in plan]
    keyed_clock = FakeClock()
    keyed_listener = RecordingListener()
    keyed = per_user(keyed_clock, keyed_listener).build_keyed()
    keyed_seen: dict[str, list[str]] = {key: [] for key in keys}
    starts: list[float] = []  # when each call began (other keys' retries move the clock)
    for (key, step), gap in zip(plan, gaps, strict=True):
        await keyed_clock.advance(gap)
        starts.append(keyed_clock.monotonic())
        outcome = await advance_until_done(
            keyed_clock, keyed.get(key).execute_outcome(Script(step))
        )
        keyed_seen[key].append(type(outcome.exception).__name__)
    for key in keys:
        clock = FakeClock()
        listener = RecordingListener()
        alone = per_user(clock, listener, instance=key).build()
        seen = []
        for (plan_key, step), start in zip(plan, starts, strict=True):
            if plan_key == key:
                await clock.advance(start - clock.monotonic())  # begins when it did, keyed
                outcome = await advance_until_done(clock, alone.execute_outcome(Script(step)))
                seen.append(type(outcome.exception).__name__)
        assert seen == keyed_seen[key]
        mine = [
            (e.name, dict(e.args))
            for e in keyed_listener.events
            if e.source.instance == key and e.source.strategy == "circuit_breaker"
        ]
        theirs = [
            (e.name, dict(e.args))
            for e in listener.events
            if e.source.strategy == "circuit_breaker"
        ]
        assert mine == theirs and len(seen) > 5
