"""AdaptiveLimiter and the admission strategy on the fake clock: lowest priority shed first,
one tenant cannot starve another, every seat given back, cancellation never a sample."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import (
    ExecutionRejectedError,
    InvalidOptionsError,
    PipelineBuilder,
    ResilienceContext,
)
from netra_resilience.admission import (
    PRIORITY_PROPERTY,
    AdaptiveLimiter,
    AdmissionOptions,
    AdmissionStrategy,
    AIMDLimit,
    OnShedArgs,
    Priority,
    VegasLimit,
)
from netra_resilience.exceptions import AdmissionRejectedError
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done


def _fixed(limit: int) -> AIMDLimit:
    """A limit that cannot move (min = max), to test queueing and shedding alone."""
    return AIMDLimit(initial_limit=limit, min_limit=limit, max_limit=limit)


def _context(priority: Priority = Priority.NORMAL, tenant: str | None = None) -> ResilienceContext:
    ctx = ResilienceContext("call", tenant_id=tenant)
    ctx.properties[PRIORITY_PROPERTY] = priority
    return ctx


def _strategy(pipeline: Any) -> AdmissionStrategy:
    strategy = pipeline.find(AdmissionStrategy)
    assert strategy is not None
    return strategy  # type: ignore[no-any-return]


async def test_lowest_priority_is_shed_first_and_highest_served_first(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=_fixed(1), max_queue=10, clock=clock)
    held = limiter.try_acquire()
    assert held is not None
    low = [asyncio.ensure_future(limiter.acquire(Priority.LOW)) for _ in range(6)]
    await clock.settle()
    # LOW may fill two fifths of the queue: four wait, two are shed at once.
    assert limiter.queued == 4
    assert sum(isinstance(t.exception(), AdmissionRejectedError) for t in low if t.done()) == 2
    critical = [asyncio.ensure_future(limiter.acquire(Priority.CRITICAL)) for _ in range(8)]
    await clock.settle()
    # The queue is full (10): the last two critical calls displaced two low ones.
    assert limiter.queued == 10
    assert limiter.shed(Priority.LOW) == 4
    assert limiter.shed(Priority.CRITICAL) == 0
    # Freed seats go to critical calls first, whatever their arrival order.
    order: list[Priority] = []
    waiting = {t: Priority.CRITICAL for t in critical} | {t: Priority.LOW for t in low}
    permit = held
    for _ in range(10):
        permit.record()
        await clock.settle()
        [done] = [t for t in waiting if t.done() and not t.exception()]
        order.append(waiting.pop(done))
        permit = done.result()
    permit.record()
    assert order == [Priority.CRITICAL] * 8 + [Priority.LOW] * 2
    assert limiter.in_flight == 0
    assert limiter.queued == 0


async def test_one_tenant_cannot_starve_another(clock: FakeClock) -> None:
    pipeline = (
        PipelineBuilder("llm", clock=clock).add_admission(algorithm=_fixed(2), max_queue=20).build()
    )
    finished: dict[str, list[float]] = {"a": [], "b": []}

    async def work(tenant: str) -> None:
        await clock.sleep(1.0)
        finished[tenant].append(clock.monotonic() - start)

    async def burst(tenant: str, count: int, after: float) -> list[Any]:
        await clock.sleep(after)
        calls = [
            pipeline.execute_outcome(work, tenant, context=_context(tenant=tenant))
            for _ in range(count)
        ]
        return list(await asyncio.gather(*calls))

    start = clock.monotonic()
    flood, fair = await advance_until_done(
        clock, asyncio.gather(burst("a", 40, 0.0), burst("b", 5, 0.5))
    )
    # a flooded far beyond its share: the excess was shed, and b's calls displaced a's
    # newest waiters instead of being shed themselves.
    assert sum(isinstance(o.exception, AdmissionRejectedError) for o in flood) > 20
    assert all(o.exception is None for o in fair)
    # A freed seat goes to the tenant holding fewer: b got one of the two seats from the
    # first release on (its five calls done by t = 6 s), though a had queued twenty before it.
    assert finished["b"] == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert sum(1 < t <= 6.0 for t in finished["a"]) == 5
    assert max(finished["a"]) > 6.0
    assert _strategy(pipeline).limiter.in_flight == 0


async def test_a_queued_call_that_is_cancelled_leaves_no_trace(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=_fixed(1), max_queue=5, queue_timeout=10, clock=clock)
    held = limiter.try_acquire()
    assert held is not None
    waiter = asyncio.ensure_future(limiter.acquire())
    await clock.settle()
    assert limiter.queued == 1 and clock.pending == 1
    waiter.cancel()
    await clock.settle()
    assert limiter.queued == 0 and clock.pending == 0  # no queue place, no timer left
    held.record()
    assert limiter.in_flight == 0


async def test_a_call_cancelled_when_handed_a_seat_passes_it_on(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=_fixed(1), max_queue=5, clock=clock)
    held = limiter.try_acquire()
    assert held is not None
    first = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    await clock.settle()
    held.record()  # the seat goes to `first` ...
    first.cancel()  # ... which is cancelled before it resumes
    await clock.settle()
    assert first.cancelled()
    permit = second.result()
    assert limiter.in_flight == 1
    permit.record()
    assert limiter.in_flight == 0


async def test_queue_timeout_sheds_with_retry_after(clock: FakeClock) -> None:
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_admission(algorithm=_fixed(1), max_queue=4, queue_timeout=2)
        .build()
    )

    async def call(seconds: float) -> str:
        await clock.sleep(seconds)
        return "ok"

    assert await advance_until_done(clock, pipeline.execute(call, 3.0)) == "ok"  # a latency
    holder = asyncio.ensure_future(pipeline.execute(call, 10.0))
    await clock.settle()
    ctx = _context(Priority.HIGH)
    outcome = await advance_until_done(clock, pipeline.execute_outcome(call, 1.0, context=ctx))
    error = outcome.exception
    assert isinstance(error, AdmissionRejectedError)
    assert isinstance(error, ExecutionRejectedError)
    assert error.dependency == "llm"
    assert error.priority == Priority.HIGH
    assert error.retry_after == pytest.approx(3.0)
    assert "queue wait timed out" in str(error)
    assert ctx.degradation.as_dict() == {"llm": "shed"}
    assert await advance_until_done(clock, holder) == "ok"
    assert _strategy(pipeline).limiter.in_flight == 0


async def test_shed_call_is_an_outcome_with_telemetry_and_on_shed(
    clock: FakeClock, listener: RecordingListener
) -> None:
    seen: list[OnShedArgs] = []
    pipeline = (
        PipelineBuilder("llm", clock=clock, telemetry=listener)
        .add_admission(algorithm=_fixed(1), max_queue=0, on_shed=seen.append)
        .build()
    )
    gate = asyncio.Event()

    async def hold() -> str:
        await gate.wait()
        return "ok"

    holder = asyncio.ensure_future(pipeline.execute(hold))
    await clock.settle()
    outcome = await pipeline.execute_outcome(hold, context=_context(Priority.LOW))
    assert isinstance(outcome.exception, AdmissionRejectedError)
    assert outcome.exception.retry_after is None  # no latency seen yet: no guess
    [event] = listener.named("admission_shed")
    assert event.args == {"priority": "low", "limit": 1, "in_flight": 1, "queued": 0}
    assert seen[0].error is outcome.exception
    gate.set()
    assert await holder == "ok"


async def test_cancelled_call_releases_its_seat_and_is_no_sample(clock: FakeClock) -> None:
    pipeline = PipelineBuilder("llm", clock=clock).add_admission(algorithm=AIMDLimit()).build()
    limiter = _strategy(pipeline).limiter

    async def slow() -> None:
        await clock.sleep(100)

    task = asyncio.ensure_future(pipeline.execute(slow))
    await clock.settle()
    assert limiter.in_flight == 1
    await clock.advance(60)  # slower than AIMD's timeout: a sample would shrink the limit
    task.cancel()
    await clock.settle()
    assert task.cancelled()
    assert limiter.in_flight == 0
    assert limiter.limit == 20
    assert clock.pending == 0


async def test_timeouts_are_drops_other_failures_are_samples(clock: FakeClock) -> None:
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_admission(
            algorithm=AIMDLimit(initial_limit=10, timeout=5), sample_window=0, window_samples=1
        )
        .build()
    )
    limiter = _strategy(pipeline).limiter

    async def fail(exc: Exception) -> None:
        raise exc

    await pipeline.execute_outcome(fail, ValueError("bad"))
    assert limiter.limit == 10  # a fast failure is a fast sample; one call in ten: app-limited
    await pipeline.execute_outcome(fail, TimeoutError())
    assert limiter.limit == 9  # a drop: x0.9
    assert limiter.in_flight == 0


async def _overload_run(
    clock: FakeClock, pipeline: Any, *, capacity: int, seconds: float
) -> dict[str, Any]:
    """A fake upstream whose latency grows past ``capacity`` concurrent calls, offered three
    times its capacity by closed-loop clients (half high priority, half low)."""
    in_flight = 0
    served = {Priority.HIGH: 0, Priority.LOW: 0}
    waited = {Priority.HIGH: 0.0, Priority.LOW: 0.0}
    shed = {Priority.HIGH: 0, Priority.LOW: 0}
    end = clock.monotonic() + seconds

    async def upstream() -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await clock.sleep(0.1 * max(1.0, in_flight / capacity))
        finally:
            in_flight -= 1

    async def client(priority: Priority) -> None:
        while clock.monotonic() < end:
            started = clock.monotonic()
            outcome = await pipeline.execute_outcome(upstream, context=_context(priority))
            if outcome.exception is None:
                served[priority] += 1
                waited[priority] += clock.monotonic() - started
            else:
                shed[priority] += 1
                await clock.sleep(0.05)

    # High-priority work alone fits (half the capacity); low-priority work makes it 3x.
    clients = [client(Priority.HIGH) for _ in range(capacity // 2)]
    clients += [client(Priority.LOW) for _ in range(3 * capacity - capacity // 2)]
    await advance_until_done(clock, asyncio.gather(*clients))
    latency = {p: waited[p] / max(1, served[p]) for p in served}
    return {"served": served, "shed": shed, "latency": latency}


@pytest.mark.parametrize(
    "algorithm",
    [VegasLimit(), AIMDLimit(timeout=0.15)],
    ids=lambda a: type(a).__name__,
)
async def test_under_overload_low_priority_is_shed_first(clock: FakeClock, algorithm: Any) -> None:
    pipeline = (
        PipelineBuilder("llm", clock=clock).add_admission(algorithm=algorithm, max_queue=10).build()
    )
    result = await _overload_run(clock, pipeline, capacity=10, seconds=20)
    limiter = _strategy(pipeline).limiter
    assert result["shed"][Priority.LOW] > 0
    assert result["shed"][Priority.HIGH] == 0
    assert result["latency"][Priority.HIGH] < result["latency"][Priority.LOW]
    assert limiter.limit <= 40  # held near capacity (10), far from max_limit (200)
    assert limiter.in_flight == 0 and limiter.queued == 0


def test_options_validation_names_the_field(clock: FakeClock) -> None:
    shared = AdaptiveLimiter(clock=clock)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limiter": shared, "max_queue": 5}, "max_queue"),
        ({"limiter": shared, "algorithm": AIMDLimit()}, "algorithm"),
        ({"limiter": object()}, "limiter"),
        ({"algorithm": "vegas"}, "algorithm"),
        ({"max_queue": -1}, "max_queue"),
        ({"queue_timeout": -1}, "queue_timeout"),
        ({"priority": 3}, "priority"),
        ({"is_drop": 3}, "is_drop"),
        ({"on_shed": "log"}, "on_shed"),
    ]
    for fields, field in cases:
        with pytest.raises(InvalidOptionsError) as info:
            AdmissionOptions(**fields)
        assert info.value.field == field
    with pytest.raises(InvalidOptionsError) as info:
        AdaptiveLimiter(max_queue=-2)
    assert info.value.field == "max_queue"


async def test_one_limiter_shared_between_pipelines(clock: FakeClock) -> None:
    shared = AdaptiveLimiter(algorithm=_fixed(1), max_queue=0, clock=clock)
    first = PipelineBuilder("a", clock=clock).add_admission(limiter=shared).build()
    second = PipelineBuilder("b", clock=clock).add_admission(limiter=shared).build()
    gate = asyncio.Event()

    async def hold() -> str:
        await gate.wait()
        return "ok"

    holder = asyncio.ensure_future(first.execute(hold))
    await clock.settle()
    outcome = await second.execute_outcome(hold)
    assert isinstance(outcome.exception, AdmissionRejectedError)
    assert outcome.exception.dependency == "b"
    gate.set()
    assert await holder == "ok"


async def test_the_priority_reserve_holds_seats_for_high_calls(clock: FakeClock) -> None:
    limiter = AdaptiveLimiter(algorithm=_fixed(10), max_queue=10, priority_reserve=0.2, clock=clock)
    assert limiter.reserved == 2
    low = [limiter.try_acquire("a", Priority.LOW) for _ in range(9)]
    assert sum(p is not None for p in low) == 8  # the last two seats are not theirs
    queued_low = asyncio.ensure_future(limiter.acquire(Priority.LOW, "a"))
    await clock.settle()
    assert limiter.queued == 1
    # A high call takes a reserved seat at once, although a low call waits.
    high = limiter.try_acquire("b", Priority.HIGH)
    assert high is not None and limiter.in_flight == 9
    # A freed seat below the low cap goes to the low waiter; a freed reserved seat does not.
    high.record()
    await clock.settle()
    assert not queued_low.done()
    first = low[0]
    assert first is not None
    first.record()
    await clock.settle()
    permit = queued_low.result()
    assert limiter.in_flight == 8
    for p in [*low[1:], permit]:
        if p is not None:
            p.record()
    assert limiter.in_flight == 0 and limiter.queued == 0


def test_priority_reserve_is_validated() -> None:
    with pytest.raises(InvalidOptionsError) as info:
        AdaptiveLimiter(priority_reserve=0.6)
    assert info.value.field == "priority_reserve"
    with pytest.raises(InvalidOptionsError) as info:
        AdmissionOptions(priority_reserve=-0.1)
    assert info.value.field == "priority_reserve"
    with pytest.raises(InvalidOptionsError) as info:
        AdmissionOptions(limiter=AdaptiveLimiter(), priority_reserve=0.1)
    assert info.value.field == "priority_reserve"
