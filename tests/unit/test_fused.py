"""Fused pipelines behave exactly as the onion: the same scenarios, run on a pipeline built
fused and on the same pipeline built with ``fuse=False``, give the same outcomes, telemetry,
degradation, timers, sleeps and breaker state.

The scenarios are generated from a seed (a property test without a dependency): random
shapes of limiter -> bulkhead -> total timeout -> retry -> breaker -> attempt timeout with
random options, driven by random upstream scripts, sequential and concurrent calls.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from netra_resilience import (
    BrokenCircuitError,
    Outcome,
    Pipeline,
    PipelineBuilder,
    ResilienceContext,
    use_context,
)
from netra_resilience.circuit_breaker import CircuitBreakerStrategy
from netra_resilience.predicates import handle, handle_result
from netra_resilience.rate_limiter import TokenBucketLimiter
from netra_resilience.retry import Backoff
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from tests.unit.retry._support import HANG, Script, Upstream

# -- scenario generation -------------------------------------------------------------------


class Slow:
    """A step that takes ``seconds`` on the fake clock, then answers ``value``."""

    def __init__(self, clock: FakeClock, seconds: float, value: Any = "slow") -> None:
        self.clock = clock
        self.seconds = seconds
        self.value = value


class Steps(Script):
    """:class:`Script` plus :class:`Slow` steps."""

    async def __call__(self) -> Any:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        if isinstance(step, Slow):
            self.calls += 1
            await step.clock.sleep(step.seconds)
            return step.value
        return await super().__call__()


def hinted() -> Upstream:
    return Upstream(retry_after=2.0)


STEPS: list[Any] = ["ok", "ok", "ok", Upstream, Upstream, hinted, ValueError, HANG, "bad"]


def build(
    spec: dict[str, Any], clock: FakeClock, listener: RecordingListener, *, fuse: bool
) -> Pipeline:
    builder = PipelineBuilder(
        "dep", clock=clock, random=random.Random(7).random, telemetry=listener
    )
    if "limiter" in spec:
        rate, burst, wait = spec["limiter"]
        limiter = TokenBucketLimiter(rate=rate, burst=burst, clock=clock, max_wait=wait)
        builder.add_rate_limiter(limiter=limiter)
    if "bulkhead" in spec:
        seats, queue = spec["bulkhead"]
        builder.add_bulkhead(max_concurrency=seats, max_queue=queue)
    if "total" in spec:
        builder.add_timeout(spec["total"])
    if "retry" in spec:
        attempts, delay, which = spec["retry"]
        handles: Any = {
            "default": None,
            "upstream": (Upstream, TimeoutError),
            "result": handle(Upstream) | handle_result(lambda r: r == "bad"),
        }[which]
        fields: dict[str, Any] = {"max_attempts": attempts, "delay": delay}
        if handles is not None:
            fields["should_handle"] = handles
        builder.add_retry(backoff=Backoff.EXPONENTIAL, **fields)
    if "breaker" in spec:
        window, slow = spec["breaker"]
        builder.add_circuit_breaker(
            failure_ratio=0.5,
            minimum_throughput=2,
            break_duration=5,
            window=window,
            window_size=4,
            slow_call_duration=slow,
        )
    if "attempt" in spec:
        builder.add_timeout(spec["attempt"])
    return builder.build(fuse=fuse)


def random_spec(rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rng.random() < 0.5:
        spec["limiter"] = (rng.choice([0.5, 2.0]), rng.choice([1, 3]), rng.choice([0.0, 3.0]))
    if rng.random() < 0.3:
        spec["bulkhead"] = (rng.choice([1, 2]), rng.choice([0, 1]))
    if rng.random() < 0.6:
        spec["retry"] = (
            rng.choice([1, 2, 3]),
            rng.choice([0.0, 0.5]),
            rng.choice(["default", "upstream", "result"]),
        )
        if rng.random() < 0.6:
            spec["total"] = rng.choice([4.0, 25.0])
    if rng.random() < 0.6:
        spec["breaker"] = (rng.choice(["time", "count"]), rng.choice([None, None, 2.0]))
    if "total" in spec or not spec or rng.random() < 0.6:
        spec["attempt"] = rng.choice([3.0, 10.0])
    return spec


def random_calls(
    rng: random.Random, spec: dict[str, Any]
) -> list[tuple[list[Any], float, bool, str]]:
    """``(steps, advance before, concurrent with the previous, how)`` per call."""
    calls = []
    # A call may hang only where a timeout ends it.
    steps_here = STEPS if "attempt" in spec else [s for s in STEPS if s is not HANG]
    for _ in range(rng.randint(4, 10)):
        steps = [rng.choice(steps_here) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.15:
            steps = [("slow", rng.choice([1.0, 4.0]))]
        how = rng.choice(["outcome", "raise", "context", "bound"])
        calls.append((steps, rng.choice([0.0, 0.0, 1.0, 6.0]), rng.random() < 0.25, how))
    return calls


# -- running and recording -------------------------------------------------------------------


def describe(outcome: Outcome[Any]) -> tuple[Any, ...]:
    exc = outcome.exception
    if exc is None:
        return ("ok", outcome.result)
    attrs = tuple(
        getattr(exc, name, None) for name in ("retry_after", "timeout", "dependency", "opened_by")
    )
    return (type(exc).__name__, str(exc), attrs, type(exc.__cause__).__name__)


async def one_call(
    pipeline: Pipeline, fn: Callable[[], Any], how: str, marks: list[Any]
) -> tuple[Any, ...]:
    context = ResilienceContext("op", user_id="u") if how in ("context", "bound") else None
    if how == "outcome":
        result = describe(await pipeline.execute_outcome(fn))
    elif how == "bound":
        assert context is not None
        with use_context(context):
            result = describe(await pipeline.execute_outcome(fn))
    else:
        try:
            result = ("ok", await pipeline.execute(fn, context=context))
        except Exception as exc:
            result = describe(Outcome(None, exc))
    if context is not None:
        marks.append([(e.dependency, e.reason) for e in context.degradation.history])
    return result


async def play(spec: dict[str, Any], calls: list[Any], *, fuse: bool) -> dict[str, Any]:
    clock = FakeClock()
    listener = RecordingListener()
    pipeline = build(spec, clock, listener, fuse=fuse)
    assert pipeline.fused is fuse
    marks: list[Any] = []
    results: list[Any] = []
    scripts: list[Steps] = []
    pending: list[asyncio.Future[Any]] = []
    for steps, gap, concurrent, how in calls:
        if gap:
            await clock.advance(gap)
        if not concurrent and pending:
            results.extend([await advance_until_done(clock, task) for task in pending])
            pending.clear()
        resolved = [Slow(clock, s[1]) if isinstance(s, tuple) else s for s in steps]
        script = Steps(*resolved)
        scripts.append(script)
        pending.append(asyncio.ensure_future(one_call(pipeline, script, how, marks)))
        await clock.settle()
    results.extend([await advance_until_done(clock, task) for task in pending])
    breaker = None
    found = pipeline.find(CircuitBreakerStrategy)
    if found is not None:
        breaker = (found.state, found.health)
    return {
        "results": results,
        "calls": [s.calls for s in scripts],
        "marks": marks,
        "events": [
            (e.name, e.source.strategy, e.operation_key, dict(e.args)) for e in listener.events
        ],
        "sleeps": clock.sleeps,
        "timeouts": clock.timeouts,
        "now": clock.monotonic(),
        "breaker": breaker,
    }


@pytest.mark.parametrize("seed", range(60))
async def test_fused_and_onion_agree(seed: int) -> None:
    rng = random.Random(seed)
    spec = random_spec(rng)
    calls = random_calls(rng, spec)
    fused = await play(spec, calls, fuse=True)
    onion = await play(spec, calls, fuse=False)
    assert fused == onion, spec


def test_the_generated_shapes_run_fused() -> None:
    clock = FakeClock()
    fused = 0
    for seed in range(60):
        spec = random_spec(random.Random(seed))
        fused += build(spec, clock, RecordingListener(), fuse=True).fused
    assert fused == 60  # every generated shape is one the fused runner takes


# -- what is fused, what keeps the onion ---------------------------------------------------------


def test_standard_shapes_fuse_and_others_keep_the_onion() -> None:
    readme = (
        PipelineBuilder("llm")
        .add_rate_limiter(rate=5, burst=10)
        .add_timeout(20)
        .add_retry(max_attempts=3, delay=0.5)
        .add_circuit_breaker()
        .add_timeout(5)
        .build()
    )
    assert readme.fused
    assert PipelineBuilder("x").add_circuit_breaker().build().fused
    assert not PipelineBuilder("x").add_circuit_breaker().build(fuse=False).fused
    assert not PipelineBuilder("x").build().fused  # nothing to fuse
    # a timeout outside a breaker (no retry to fuse with): the onion keeps the order's meaning
    assert not PipelineBuilder("x").add_timeout(5).add_circuit_breaker().build().fused
    # a per-call timeout, a partitioned limiter, fallbacks: the onion
    generated = PipelineBuilder("x").add_timeout(timeout_generator=lambda _c: 1.0).build()
    assert not generated.fused
    assert not PipelineBuilder("x").add_fallback(action=lambda _a: 0).build().fused


async def test_an_unfused_total_falls_back_to_the_onion_per_call() -> None:
    """A total timeout reused by a second pipeline unfuses; the first one keeps working."""
    clock = FakeClock()
    builder = PipelineBuilder("x", clock=clock).add_timeout(5).add_retry(max_attempts=2)
    first = builder.add_timeout(2).build()
    assert first.fused
    total = first.strategies[0]
    PipelineBuilder("y", clock=clock).add_strategy(total).build()
    outcome = await advance_until_done(clock, first.execute_outcome(Script(HANG)))
    assert type(outcome.exception).__name__ == "TimeoutRejectedError"
    assert clock.timeouts[0] == 5.0  # the total armed its own timer again: the onion ran


async def test_open_breaker_rejects_without_a_private_context_or_a_raise() -> None:
    clock = FakeClock()
    pipeline = (
        PipelineBuilder("x", clock=clock)
        .add_circuit_breaker(minimum_throughput=2, break_duration=60)
        .build()
    )
    for _ in range(2):
        await pipeline.execute_outcome(Script(Upstream))
    outcome = await pipeline.execute_outcome(Script("ok"))
    assert isinstance(outcome.exception, BrokenCircuitError)
    assert outcome.exception.__traceback__ is None  # returned, never raised
    ctx = ResilienceContext("op")
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(Script("ok"), context=ctx)
    assert [e.reason for e in ctx.degradation.history] == ["circuit_open"]


async def play_system_clock(spec: dict[str, Any], calls: list[Any], *, fuse: bool) -> Any:
    """The same on the real clock (its inline deadline-queue timer): calls that never wait."""
    listener = RecordingListener()
    builder = PipelineBuilder("dep", random=random.Random(7).random, telemetry=listener)
    builder.add_rate_limiter(rate=1e6, burst=spec["burst"])
    builder.add_timeout(30)
    builder.add_retry(max_attempts=spec["attempts"], delay=0.0)
    builder.add_circuit_breaker(minimum_throughput=2, break_duration=300)
    builder.add_timeout(10)
    pipeline = builder.build(fuse=fuse)
    assert pipeline.fused is fuse
    marks: list[Any] = []
    results = [await one_call(pipeline, Steps(*steps), how, marks) for steps, how in calls]
    return [real_time_free(r) for r in results], marks, listener.names()


def real_time_free(result: tuple[Any, ...]) -> tuple[Any, ...]:
    """A result without what real time changes between two runs (an open break's rest)."""
    if result[0] != "BrokenCircuitError":
        return result
    name, _, (_, timeout, dependency, opened_by), cause = result
    return (name, timeout, dependency, opened_by, cause)


@pytest.mark.parametrize("seed", range(10))
async def test_fused_and_onion_agree_on_the_real_clock(seed: int) -> None:
    rng = random.Random(seed)
    spec = {"burst": rng.choice([3, 50]), "attempts": rng.choice([1, 2, 3])}
    steps = ["ok", Upstream, ValueError, "bad"]  # no hint: a hint would be a real sleep
    calls = [
        ([rng.choice(steps) for _ in range(3)], rng.choice(["outcome", "raise", "bound"]))
        for _ in range(12)
    ]
    fused = await play_system_clock(spec, calls, fuse=True)
    onion = await play_system_clock(spec, calls, fuse=False)
    assert fused == onion
