"""Hedging on the fake clock: latency, parallel and fallback modes (Polly v8), losers
cancelled and awaited with every permit and timer released, cancellation never counted,
only work safe to repeat hedged, hedges within the retry budget."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder, ResilienceContext
from netra_resilience.admission import AdaptiveLimiter, AIMDLimit, RetryBudget
from netra_resilience.effects import effect_scope
from netra_resilience.hedging import HedgingOptions, HedgingStrategy, OnHedgeArgs
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done


class Upstream:
    """Attempt ``n`` sleeps ``latencies[n]`` (the last one repeats) and fails if listed."""

    def __init__(
        self, clock: FakeClock, latencies: list[float], fail: Collection[int] = ()
    ) -> None:
        self.clock = clock
        self.latencies = latencies
        self.fail = fail
        self.started = 0
        self.finished = 0
        self.cancelled = 0
        self.closed = 0

    async def __call__(self) -> Any:
        attempt = self.started
        self.started += 1
        try:
            await self.clock.sleep(self.latencies[min(attempt, len(self.latencies) - 1)])
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        if attempt in self.fail:
            raise ConnectionError(f"attempt {attempt} failed")
        return Answer(self, attempt)


class Answer:
    def __init__(self, upstream: Upstream, attempt: int) -> None:
        self.upstream = upstream
        self.attempt = attempt

    def close(self) -> None:
        self.upstream.closed += 1


def _pipeline(clock: FakeClock, listener: RecordingListener | None = None, **options: Any) -> Any:
    return PipelineBuilder("llm", clock=clock, telemetry=listener).add_hedging(**options).build()


def _strategy(pipeline: Any) -> HedgingStrategy:
    strategy = pipeline.find(HedgingStrategy)
    assert strategy is not None
    return strategy  # type: ignore[no-any-return]


async def test_latency_mode_hedge_wins_and_loser_is_cancelled(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline = _pipeline(clock, listener, delay=1.0)
    upstream = Upstream(clock, [10.0, 0.5])
    answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert answer.attempt == 1
    assert clock.monotonic() == pytest.approx(1000 + 1.5)
    assert (upstream.started, upstream.cancelled) == (2, 1)
    assert clock.pending == 0  # no timer or sleep left behind
    assert _strategy(pipeline).hedges == 1 and _strategy(pipeline).hedge_wins == 1
    assert listener.names(strategy="hedging") == ["hedge", "hedge_cancelled"]
    assert listener.named("hedge_cancelled")[0].args == {"attempt": 0}


async def test_fast_primary_is_never_hedged(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=1.0)
    upstream = Upstream(clock, [0.2])
    answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert answer.attempt == 0 and upstream.started == 1 and clock.pending == 0


async def test_a_failure_starts_the_next_attempt_at_once(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=5.0, max_hedged_attempts=2)
    upstream = Upstream(clock, [0.1, 0.3, 0.3], fail={0})
    answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert answer.attempt == 1
    assert clock.monotonic() == pytest.approx(1000 + 0.4)  # no waiting for the 5 s delay


async def test_every_attempt_failing_returns_the_last_failure(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=1.0, max_hedged_attempts=2)
    upstream = Upstream(clock, [3.0, 3.0, 3.0], fail={0, 1, 2})
    outcome = await advance_until_done(clock, pipeline.execute_outcome(upstream))
    assert isinstance(outcome.exception, ConnectionError)
    assert str(outcome.exception) == "attempt 2 failed"
    assert upstream.started == 3 and upstream.cancelled == 0


async def test_parallel_mode_starts_all_and_closes_late_winners(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=0, max_hedged_attempts=2)
    upstream = Upstream(clock, [2.0, 1.0, 1.0])
    answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert upstream.started == 3
    assert answer.attempt == 1
    # Attempt 2 finished in the same instant: its result was closed, never leaked.
    assert upstream.cancelled + upstream.closed == 2
    assert clock.pending == 0


async def test_fallback_mode_hedges_only_after_a_failure(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=None, max_hedged_attempts=1)
    slow = Upstream(clock, [30.0])
    answer = await advance_until_done(clock, pipeline.execute(slow))
    assert answer.attempt == 0 and slow.started == 1
    failing = Upstream(clock, [30.0, 1.0], fail={0})
    answer = await advance_until_done(clock, pipeline.execute(failing))
    assert answer.attempt == 1 and failing.started == 2


async def test_cancelling_the_call_cancels_and_awaits_every_attempt(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=AIMDLimit(initial_limit=5), clock=clock)
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_hedging(delay=1.0, max_hedged_attempts=2)
        .add_admission(limiter=limiter)  # each attempt holds a seat
        .build()
    )
    upstream = Upstream(clock, [100.0])
    task = asyncio.ensure_future(pipeline.execute(upstream))
    await clock.advance(2.5)
    assert upstream.started == 3 and limiter.in_flight == 3
    task.cancel()
    await clock.settle()
    assert task.cancelled()
    assert upstream.cancelled == 3
    assert limiter.in_flight == 0  # every seat released in finally
    assert limiter.limit == 5  # cancelled attempts are no latency samples
    assert clock.pending == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no attempt task left behind


async def test_losers_release_their_seats(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=AIMDLimit(initial_limit=5), clock=clock)
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_hedging(delay=1.0, max_hedged_attempts=3)
        .add_admission(limiter=limiter)
        .build()
    )
    upstream = Upstream(clock, [50.0, 50.0, 0.5, 50.0])
    answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert answer.attempt == 2
    assert limiter.in_flight == 0 and upstream.cancelled == 2
    assert clock.pending == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_shed_hedge_does_not_win(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=AIMDLimit(initial_limit=1, min_limit=1), max_queue=0)
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_hedging(delay=1.0)
        .add_admission(limiter=limiter)
        .build()
    )
    upstream = Upstream(clock, [3.0])
    answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert answer.attempt == 0  # the hedge was shed (one seat): the primary still answered
    assert limiter.shed() == 1 and limiter.in_flight == 0


async def test_unsafe_work_is_never_hedged(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=1.0)
    upstream = Upstream(clock, [10.0, 0.5])
    with effect_scope("unsafe"):
        answer = await advance_until_done(clock, pipeline.execute(upstream))
    assert answer.attempt == 0 and upstream.started == 1
    with effect_scope("idempotent", idempotency_key="k-1"):
        answer = await advance_until_done(clock, pipeline.execute(Upstream(clock, [10.0, 0.5])))
    assert answer.attempt == 1


async def test_hedges_spend_the_retry_budget(clock: FakeClock, listener: RecordingListener) -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, ttl=1000, clock=clock)
    pipeline = _pipeline(clock, listener, delay=1.0, budget=budget)
    for _ in range(30):  # every call slow: each would hedge without the budget
        await advance_until_done(clock, pipeline.execute(Upstream(clock, [2.0])))
    assert _strategy(pipeline).hedges == 3  # 10 % of 30 calls
    assert budget.denied == 27
    assert len(listener.named("hedge_budget_exhausted")) == 27


async def test_percentile_delay_follows_observed_latency(clock: FakeClock) -> None:
    pipeline = _pipeline(clock, delay=5.0, delay_percentile=0.9, window=50)
    strategy = _strategy(pipeline)
    assert strategy.current_delay() == 5.0
    for i in range(50):
        latency = 0.1 + (i * 7 % 50) / 100  # 0.10 ... 0.59, shuffled
        await advance_until_done(clock, pipeline.execute(Upstream(clock, [latency])))
    # Twenty samples were needed; afterwards calls above the running p90 were hedged
    # (their hedge answered as slowly), and only primaries that answered count.
    assert 0.4 < strategy.current_delay() <= 0.59  # type: ignore[operator]
    assert 0 < strategy.hedges < 10


async def test_heavy_tail_p99_halved_for_little_extra_load(clock: FakeClock) -> None:
    """5 % of calls 10x slower: hedging at the observed p97 cuts p99 to under half for at
    most 10 % extra attempts."""

    async def run(pipeline: Any) -> tuple[float, int]:
        latencies, attempts = [], 0
        for i in range(400):
            normal = 0.1 + (i * 37 % 50) / 1000  # 0.100 ... 0.149
            tail = [1.0 if i % 20 == 0 else normal, 0.1 + (i % 5) / 100]
            upstream = Upstream(clock, tail)
            started = clock.monotonic()
            await advance_until_done(clock, pipeline.execute(upstream))
            latencies.append(clock.monotonic() - started)
            attempts += upstream.started
        latencies.sort()
        return latencies[int(0.99 * len(latencies))], attempts

    plain_p99, plain_attempts = await run(PipelineBuilder("llm", clock=clock).build())
    hedged_p99, hedged_attempts = await run(
        _pipeline(clock, delay=0.5, delay_percentile=0.97, window=200)
    )
    assert hedged_p99 <= 0.5 * plain_p99
    assert hedged_attempts <= 1.1 * plain_attempts


async def test_on_hedge_is_told_and_its_failure_ends_the_call(clock: FakeClock) -> None:
    seen: list[OnHedgeArgs] = []
    pipeline = _pipeline(clock, delay=1.0, on_hedge=seen.append)
    ctx = ResilienceContext("ask")
    await advance_until_done(clock, pipeline.execute(Upstream(clock, [3.0, 0.1]), context=ctx))
    assert [(a.context, a.attempt) for a in seen] == [(ctx, 1)]

    def refuse(args: OnHedgeArgs) -> None:
        raise RuntimeError("observer broke")

    broken = _pipeline(clock, delay=1.0, on_hedge=refuse)
    upstream = Upstream(clock, [3.0, 0.1])
    outcome = await advance_until_done(clock, broken.execute_outcome(upstream))
    assert isinstance(outcome.exception, RuntimeError)
    assert upstream.cancelled == 1 and clock.pending == 0


def test_options_name_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"delay": -1}, "delay"),
        ({"max_hedged_attempts": 0}, "max_hedged_attempts"),
        ({"max_hedged_attempts": 11}, "max_hedged_attempts"),
        ({"delay_percentile": 1.5}, "delay_percentile"),
        ({"delay": 0, "delay_percentile": 0.9}, "delay_percentile"),
        ({"window": 5}, "window"),
        ({"budget": 0.1}, "budget"),
        ({"should_handle": 3}, "should_handle"),
        ({"on_hedge": "x"}, "on_hedge"),
    ]
    for fields, field in cases:
        with pytest.raises(InvalidOptionsError) as info:
            HedgingOptions(**fields)
        assert info.value.field == field
