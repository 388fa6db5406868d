"""RateLimiterStrategy through PipelineBuilder: rejections, degradation, 429 pauses, options."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import (
    InvalidOptionsError,
    Outcome,
    PipelineBuilder,
    RateLimitRejectedError,
    ResilienceContext,
)
from netra_resilience.rate_limiter import (
    OnRateLimiterRejectedArgs,
    PartitionedRateLimiter,
    RateLimiterOptions,
    RateLimiterStrategy,
    TokenBucketLimiter,
)
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done

TOKENS = "tokens"


class UpstreamRateLimited(Exception):
    """What an HTTP client error for a 429 looks like to the default hint."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("429 Too Many Requests")
        self.retry_after = retry_after


async def ok() -> int:
    return 1


def _pipeline(clock: FakeClock, listener: RecordingListener | None = None, **options: Any) -> Any:
    return (
        PipelineBuilder("llm", clock=clock, telemetry=listener)
        .add_rate_limiter(RateLimiterOptions(**options))
        .build()
    )


async def test_rejection_is_an_outcome_marked_rate_limited(
    clock: FakeClock, listener: RecordingListener
) -> None:
    limiter = TokenBucketLimiter(rate=2, burst=1, clock=clock)
    pipeline = _pipeline(clock, listener, limiter=limiter)
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(ok, context=ctx) == 1
    assert not ctx.degradation
    outcome = await pipeline.execute_outcome(ok, context=ctx)
    error = outcome.exception
    assert isinstance(error, RateLimitRejectedError)
    assert error.dependency == "llm"
    assert error.retry_after == pytest.approx(0.5)
    assert ctx.degradation.as_dict() == {"llm": "rate_limited"}
    [event] = listener.named("rate_limiter_rejected")
    assert event.operation_key == "chat"
    assert event.args["permits"] == 1
    assert event.args["retry_after"] == pytest.approx(0.5)
    with pytest.raises(RateLimitRejectedError):
        await pipeline.execute(ok, context=ctx)
    assert pipeline.strategies[0].kind == "rate_limiter"


@pytest.mark.parametrize(
    ("max_wait", "blocks"), [(None, False), (0.0, False), (0.5, True), (None, True)]
)
def test_a_limiter_blocks_only_when_it_may_wait(max_wait: float | None, blocks: bool) -> None:
    # (None, True): the limiter's own default wait is 1 s
    limiter_wait = 1.0 if blocks and max_wait is None else 0.0
    limiter = TokenBucketLimiter(rate=1, burst=1, max_wait=limiter_wait)
    options = RateLimiterOptions(limiter=limiter, max_wait=max_wait)
    strategy = PipelineBuilder("x").add_rate_limiter(options).build().strategies[0]
    assert isinstance(strategy, RateLimiterStrategy)
    assert strategy.may_block is blocks


async def test_fast_path_touches_no_timer(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1000, burst=100, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter)
    for _ in range(100):
        assert await pipeline.execute(ok) == 1
    assert clock.sleeps == [] and clock.timeouts == []


async def test_bounded_wait_through_the_pipeline(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=1, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter, max_wait=0.25)
    start = clock.monotonic()
    times: list[float] = []

    async def record() -> None:
        times.append(round(clock.monotonic() - start, 6))

    outcomes = await advance_until_done(
        clock, asyncio.gather(*(pipeline.execute_outcome(record) for _ in range(4)))
    )
    assert times == [0.0, 0.1, 0.2]
    assert isinstance(outcomes[3].exception, RateLimitRejectedError)
    assert outcomes[3].exception.retry_after == pytest.approx(0.3)


async def test_upstream_retry_after_pauses_every_caller_no_storm(
    clock: FakeClock, listener: RecordingListener
) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=1, clock=clock)
    pipeline = _pipeline(clock, listener, limiter=limiter, max_wait=60)
    start = clock.monotonic()
    upstream_calls: list[float] = []

    async def upstream() -> str:
        upstream_calls.append(round(clock.monotonic() - start, 6))
        if len(upstream_calls) == 1:
            await clock.sleep(0.05)
            raise UpstreamRateLimited(retry_after=2.0)
        return "ok"

    outcomes = await advance_until_done(
        clock, asyncio.gather(*(pipeline.execute_outcome(upstream) for _ in range(5)))
    )
    # One 429 at t=0.05 holds back the four queued callers until 2.05, then paces them.
    assert upstream_calls == pytest.approx([0.0, 2.15, 2.25, 2.35, 2.45])
    assert isinstance(outcomes[0].exception, UpstreamRateLimited)
    assert [o.result for o in outcomes[1:]] == ["ok"] * 4
    [paused] = listener.named("rate_limiter_paused")
    assert paused.args["seconds"] == 2.0


async def test_pause_rejects_newcomers_with_the_pause_as_retry_after(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=10, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter)

    async def throttled() -> None:
        raise UpstreamRateLimited(retry_after=30)

    ctx = ResilienceContext()
    with pytest.raises(UpstreamRateLimited):
        await pipeline.execute(throttled, context=ctx)
    assert limiter.paused_until == pytest.approx(clock.monotonic() + 30)
    with pytest.raises(RateLimitRejectedError) as info:
        await pipeline.execute(ok, context=ctx)
    assert info.value.retry_after == pytest.approx(30.1)
    assert ctx.degradation.reason("llm") == "rate_limited"


async def test_pause_hint_can_read_results_or_be_turned_off(clock: FakeClock) -> None:
    def hint(outcome: Outcome[Any]) -> float | None:
        result = outcome.result
        return result.get("retry_after") if isinstance(result, dict) else None

    limiter = TokenBucketLimiter(rate=10, burst=10, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter, pause_hint=hint)

    async def response_429() -> dict[str, float]:
        return {"status": 429, "retry_after": 3.0}

    await pipeline.execute(response_429)
    assert limiter.paused_until == pytest.approx(clock.monotonic() + 3)

    unpaused = TokenBucketLimiter(rate=10, burst=10, clock=clock)
    pipeline = _pipeline(clock, limiter=unpaused, pause_hint=None)

    async def throttled() -> None:
        raise UpstreamRateLimited(retry_after=30)

    with pytest.raises(UpstreamRateLimited):
        await pipeline.execute(throttled)
    assert unpaused.paused_until is None


@pytest.mark.parametrize("bad", [-1.0, 0.0, float("nan"), RuntimeError("broken hint")])
async def test_insane_or_broken_hints_never_pause_nor_fail_the_call(
    clock: FakeClock, bad: object
) -> None:
    def hint(outcome: Outcome[Any]) -> Any:
        if isinstance(bad, Exception):
            raise bad
        return bad

    limiter = TokenBucketLimiter(rate=10, burst=10, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter, pause_hint=hint)
    assert await pipeline.execute(ok) == 1
    assert limiter.paused_until is None


async def test_a_hint_above_max_pause_pauses_for_max_pause(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=10, burst=10, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter, pause_hint=lambda outcome: 100_000.0)
    assert await pipeline.execute(ok) == 1
    assert limiter.paused_until == pytest.approx(clock.monotonic() + 300.0)


async def test_token_weighted_permits(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=100, burst=100, clock=clock)  # 100 tokens/s
    pipeline = _pipeline(clock, limiter=limiter, permits=lambda ctx: ctx.properties.get(TOKENS, 1))

    def ctx(tokens: int) -> ResilienceContext:
        context = ResilienceContext("chat")
        context.properties[TOKENS] = tokens
        return context

    assert await pipeline.execute(ok, context=ctx(80)) == 1
    with pytest.raises(RateLimitRejectedError) as info:
        await pipeline.execute(ok, context=ctx(30))
    assert info.value.retry_after == pytest.approx(0.1)
    with pytest.raises(RateLimitRejectedError, match="exceed the burst") as info:
        await pipeline.execute(ok, context=ctx(500))
    assert info.value.retry_after is None
    with pytest.raises(ValueError, match="permits"):
        await pipeline.execute(ok, context=ctx(-1))
    assert await pipeline.execute(ok, context=ctx(20)) == 1


async def test_partitioned_by_user(clock: FakeClock) -> None:
    per_user = PartitionedRateLimiter(
        lambda key: TokenBucketLimiter(rate=1, burst=1, clock=clock), max_partitions=100
    )
    pipeline = _pipeline(clock, partitioned=per_user, partition_key=lambda ctx: ctx.user_id or "")
    alice = ResilienceContext(user_id="alice")
    assert await pipeline.execute(ok, context=alice) == 1
    with pytest.raises(RateLimitRejectedError):
        await pipeline.execute(ok, context=alice)
    assert await pipeline.execute(ok, context=ResilienceContext(user_id="bob")) == 1
    assert sorted(k for k in ("alice", "bob") if k in per_user) == ["alice", "bob"]
    strategy = pipeline.strategies[0]
    assert strategy.partitioned is per_user and strategy.limiter is None


async def test_partition_key_defaults_to_the_caller_scope(clock: FakeClock) -> None:
    per_scope = PartitionedRateLimiter(
        lambda key: TokenBucketLimiter(rate=1, burst=1, clock=clock), max_partitions=100
    )
    pipeline = _pipeline(clock, partitioned=per_scope)
    await pipeline.execute(ok, context=ResilienceContext(user_id="u", tenant_id="t"))
    assert ResilienceContext("x", tenant_id="t", user_id="u").scope in per_scope


async def test_a_failing_partition_key_is_an_outcome(clock: FakeClock) -> None:
    per_user = PartitionedRateLimiter(lambda key: TokenBucketLimiter(rate=1, burst=1))

    def key(ctx: ResilienceContext) -> str:
        raise LookupError("no user")

    pipeline = _pipeline(clock, partitioned=per_user, partition_key=key)
    outcome = await pipeline.execute_outcome(ok)
    assert isinstance(outcome.exception, LookupError)


async def test_on_rejected_sync_async_and_broken(clock: FakeClock) -> None:
    seen: list[OnRateLimiterRejectedArgs] = []

    async def on_rejected(args: OnRateLimiterRejectedArgs) -> None:
        seen.append(args)

    def broken(args: OnRateLimiterRejectedArgs) -> None:
        raise RuntimeError("observer bug")

    for callback in (on_rejected, seen.append, broken):
        limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
        pipeline = _pipeline(clock, limiter=limiter, on_rejected=callback)
        await pipeline.execute(ok)
        ctx = ResilienceContext("op")
        with pytest.raises(RateLimitRejectedError):
            await pipeline.execute(ok, context=ctx)
    assert len(seen) == 2
    assert seen[0].permits == 1
    assert isinstance(seen[0].error, RateLimitRejectedError)
    assert seen[0].error.dependency == "llm"


async def test_cancelled_caller_leaves_the_queue(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
    pipeline = _pipeline(clock, limiter=limiter, max_wait=60)
    await pipeline.execute(ok)
    task = asyncio.ensure_future(pipeline.execute(ok))
    await clock.settle()
    assert limiter.waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.waiting == 0
    await clock.advance(1)
    assert limiter.try_acquire() == 0.0


class RemoteLikeLimiter:
    """Decides only asynchronously (like a Redis limiter): try_acquire never says yes."""

    rate = 1.0
    burst = 10
    paused_until: float | None = None

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.acquired: list[tuple[int, float | None]] = []
        self.paused: list[float] = []

    def try_acquire(self, permits: int = 1) -> float:
        return 1.0  # "ask acquire()"

    async def acquire(self, permits: int = 1, *, max_wait: Any = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.acquired.append((permits, max_wait))

    def pause(self, seconds: Any) -> None:
        self.paused.append(seconds)


async def test_a_limiter_that_decides_asynchronously(clock: FakeClock) -> None:
    remote = RemoteLikeLimiter()
    pipeline = _pipeline(clock, limiter=remote, max_wait=2, permits=3)
    assert await pipeline.execute(ok) == 1
    assert remote.acquired == [(3, 2.0)]

    async def throttled() -> None:
        raise UpstreamRateLimited(retry_after=7)

    with pytest.raises(UpstreamRateLimited):
        await pipeline.execute(throttled)
    assert remote.paused == [7]


async def test_limiter_errors_are_outcomes_never_raises(clock: FakeClock) -> None:
    broken = RemoteLikeLimiter(fail=ConnectionError("redis down"))
    pipeline = _pipeline(clock, limiter=broken)
    outcome = await pipeline.execute_outcome(ok)
    assert isinstance(outcome.exception, ConnectionError)


def test_options_defaults_and_normalisation() -> None:
    limiter = TokenBucketLimiter(rate=1, burst=5)
    options = RateLimiterOptions(limiter=limiter, max_wait=timedelta(milliseconds=1500))
    assert options.max_wait == 1.5
    assert options.permits == 1 and options.pause_hint is not None


_LIMITER = TokenBucketLimiter(rate=1, burst=5)
_PARTITIONED = PartitionedRateLimiter(lambda key: TokenBucketLimiter(rate=1, burst=5))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "limiter"),
        ({"limiter": "x"}, "limiter"),
        ({"partitioned": "x"}, "partitioned"),
        ({"limiter": _LIMITER, "partition_key": lambda ctx: ""}, "partition_key"),
        ({"partitioned": _PARTITIONED, "partition_key": "user_id"}, "partition_key"),
        ({"limiter": _LIMITER, "permits": 0}, "permits"),
        ({"limiter": _LIMITER, "permits": 6}, "permits"),
        ({"limiter": _LIMITER, "permits": 1.5}, "permits"),
        ({"limiter": _LIMITER, "max_wait": -1}, "max_wait"),
        ({"limiter": _LIMITER, "pause_hint": 3}, "pause_hint"),
        ({"limiter": _LIMITER, "on_rejected": "log"}, "on_rejected"),
    ],
)
def test_invalid_options_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError, match=rf"RateLimiterOptions\.{field}") as info:
        RateLimiterOptions(**kwargs)
    assert info.value.field == field


def test_both_limiter_and_partitioned_is_invalid() -> None:
    with pytest.raises(InvalidOptionsError, match=r"RateLimiterOptions\.limiter"):
        RateLimiterOptions(
            limiter=TokenBucketLimiter(rate=1, burst=1),
            partitioned=PartitionedRateLimiter(lambda key: TokenBucketLimiter(rate=1, burst=1)),
        )
