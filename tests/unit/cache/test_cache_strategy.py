"""The cache strategy through a pipeline: hits, misses, expiry, backend failures, stale-on-error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import BrokenCircuitError, Outcome, PipelineBuilder, ResilienceContext
from netra_resilience.cache import CacheEntry, CacheOptions, CacheStrategy, InMemoryTTLCache
from netra_resilience.predicates import handle, handle_result
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done
from tests.unit.cache._support import (
    BrokenBackend,
    FakeBreaker,
    HangingBackend,
    Upstream,
    by_arguments,
)


def cache_pipeline(
    clock: FakeClock,
    *,
    listener: RecordingListener | None = None,
    backend: Any = None,
    breaker: FakeBreaker | None = None,
    name: str = "llm",
    **options: Any,
):
    options.setdefault("ttl", 60)
    options.setdefault("stale_ttl", 600)
    options.setdefault("key", by_arguments)
    # these tests are about the strategy, not isolation: one shared cache, anonymous callers
    options.setdefault("include_scope", False)
    backend = backend if backend is not None else InMemoryTTLCache(clock=clock)
    builder = PipelineBuilder(name, clock=clock, telemetry=listener)
    builder.add_cache(CacheOptions(backend=backend, **options))
    if breaker is not None:
        builder.add_strategy(breaker)
    return builder.build()


async def test_fresh_hit_skips_the_call_and_is_not_degradation(clock, listener) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, listener=listener)
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(upstream, "hi", context=ctx) == "answer:hi"
    assert await pipeline.execute(upstream, "hi", context=ctx) == "answer:hi"
    assert upstream.calls == 1
    assert not ctx.degradation
    assert listener.names(strategy="cache") == ["cache_miss", "cache_hit"]


async def test_different_arguments_are_different_entries(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock)
    await pipeline.execute(upstream, "hi", model="a")
    await pipeline.execute(upstream, "hi", model="b")
    await pipeline.execute(upstream, "ho", model="a")
    assert upstream.calls == 3


async def test_entry_expires_after_ttl(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, ttl=60)
    await pipeline.execute(upstream, "hi")
    await clock.advance(59.9)
    await pipeline.execute(upstream, "hi")
    assert upstream.calls == 1
    await clock.advance(0.1)
    upstream.answer = "newer"
    assert await pipeline.execute(upstream, "hi") == "newer:hi"
    assert upstream.calls == 2


async def test_backend_get_error_is_a_miss_and_the_call_proceeds(clock, listener) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, listener=listener, backend=BrokenBackend(set=False))
    assert await pipeline.execute(upstream, "hi") == "answer:hi"
    assert await pipeline.execute(upstream, "hi") == "answer:hi"
    assert upstream.calls == 2
    errors = listener.named("cache_error")
    assert [e.args["reason"] for e in errors] == ["get", "get"]
    assert errors[0].args["error_type"] == "ConnectionError"


async def test_backend_set_error_does_not_fail_the_request(clock, listener) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, listener=listener, backend=BrokenBackend(get=False))
    assert await pipeline.execute(upstream, "hi") == "answer:hi"
    assert [e.args["reason"] for e in listener.named("cache_error")] == ["set"]


async def test_hanging_backend_is_a_miss_within_the_backend_timeout(clock) -> None:
    upstream = Upstream()
    backend = HangingBackend()
    pipeline = cache_pipeline(clock, backend=backend, backend_timeout=0.25)
    start = clock.monotonic()
    result = await advance_until_done(clock, pipeline.execute(upstream, "hi"))
    assert result == "answer:hi" and upstream.calls == 1
    assert backend.started == 2  # the get timed out, then the store timed out
    assert clock.timeouts == [0.25, 0.25]
    assert clock.monotonic() - start == pytest.approx(0.5)  # fake time: two bounded waits


async def test_no_backend_timeout_means_no_timer_is_armed(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, backend_timeout=None)
    await pipeline.execute(upstream, "hi")
    assert clock.timeouts == []


async def test_stale_entry_is_served_on_error_and_marks_stale_cache(clock, listener) -> None:
    upstream = Upstream()
    stale_seen: list[CacheEntry] = []
    pipeline = cache_pipeline(
        clock,
        listener=listener,
        ttl=60,
        stale_ttl=600,
        on_stale=lambda a: stale_seen.append(a.entry),
    )
    await pipeline.execute(upstream, "hi")
    await clock.advance(120)  # past ttl, within stale_ttl
    upstream.error = ConnectionError("provider down")
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(upstream, "hi", context=ctx) == "answer:hi"
    assert upstream.calls == 2  # not fresh: the call was tried first
    assert ctx.degradation.as_dict() == {"llm": "stale_cache"}
    [event] = listener.named("cache_stale")
    assert event.args["error_type"] == "ConnectionError"
    assert event.args["age"] == pytest.approx(120)
    assert len(stale_seen) == 1


async def test_open_breaker_inside_is_answered_from_the_stale_entry(clock) -> None:
    upstream = Upstream()
    breaker = FakeBreaker()
    pipeline = cache_pipeline(clock, breaker=breaker, ttl=10, stale_ttl=300)
    await pipeline.execute(upstream, "hi")
    await clock.advance(30)
    breaker.open = True
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(upstream, "hi", context=ctx) == "answer:hi"
    assert upstream.calls == 1  # the breaker rejected; the upstream was never called
    assert ctx.degradation.reason("llm") == "stale_cache"
    # With nothing cached for this call, the rejection itself comes back.
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(upstream, "other", context=ctx)


async def test_after_stale_ttl_the_original_error_is_returned(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, ttl=60, stale_ttl=600)
    await pipeline.execute(upstream, "hi")
    await clock.advance(660)
    boom = ConnectionError("provider down")
    upstream.error = boom
    ctx = ResilienceContext("chat")
    outcome = await pipeline.execute_outcome(upstream, "hi", context=ctx)
    assert outcome.exception is boom
    assert not ctx.degradation


async def test_stale_on_decides_which_failures_serve_stale(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, stale_on=handle(ConnectionError))
    await pipeline.execute(upstream, "hi")
    await clock.advance(120)
    upstream.error = PermissionError("bad key")
    with pytest.raises(PermissionError):
        await pipeline.execute(upstream, "hi")
    upstream.error = ConnectionError("down")
    assert await pipeline.execute(upstream, "hi") == "answer:hi"


async def test_a_failing_result_serves_stale_and_is_never_stored(clock) -> None:
    calls = 0

    async def status(code: int) -> int:
        nonlocal calls
        calls += 1
        return code

    backend = InMemoryTTLCache(clock=clock)
    key = lambda ctx, args, kwargs: "status"  # noqa: E731 - one entry for every code
    pipeline = cache_pipeline(
        clock, backend=backend, key=key, stale_on=handle_result(lambda r: r >= 500)
    )
    assert await pipeline.execute(status, 200) == 200
    await clock.advance(120)
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(status, 503, context=ctx) == 200
    assert ctx.degradation.reason("llm") == "stale_cache"
    await clock.advance(600)  # the good entry is gone; the 503 was not stored in its place
    assert await pipeline.execute(status, 503) == 503
    assert len(backend) == 0
    assert calls == 3


async def test_ttl_zero_never_serves_fresh_but_serves_stale_on_error(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, ttl=0, stale_ttl=300)
    await pipeline.execute(upstream, "hi")
    await pipeline.execute(upstream, "hi")
    assert upstream.calls == 2
    upstream.error = TimeoutError()
    assert await pipeline.execute(upstream, "hi") == "answer:hi"


async def test_serve_fresh_false_always_calls_but_still_serves_stale(clock) -> None:
    upstream = Upstream()
    pipeline = cache_pipeline(clock, serve_fresh=False)
    await pipeline.execute(upstream, "hi")
    await pipeline.execute(upstream, "hi")
    assert upstream.calls == 2
    upstream.error = ConnectionError()
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(upstream, "hi", context=ctx) == "answer:hi"
    assert ctx.degradation.reason("llm") == "stale_cache"


async def test_should_cache_false_is_not_stored(clock) -> None:
    upstream = Upstream()
    backend = InMemoryTTLCache(clock=clock)
    upstream.answer = "I cannot help with that"
    pipeline = cache_pipeline(
        clock, backend=backend, should_cache=lambda r: not r.startswith("I cannot")
    )
    await pipeline.execute(upstream, "hi")
    await pipeline.execute(upstream, "hi")
    assert upstream.calls == 2 and len(backend) == 0


async def test_should_cache_raising_skips_the_store_without_failing(clock, listener) -> None:
    def broken(result: Any) -> bool:
        raise RuntimeError("bug")

    pipeline = cache_pipeline(clock, listener=listener, should_cache=broken)
    assert await pipeline.execute(Upstream(), "hi") == "answer:hi"
    assert listener.named("cache_error")[0].args["reason"] == "should_cache"


async def test_key_none_bypasses_the_cache(clock, listener) -> None:
    upstream = Upstream()
    backend = InMemoryTTLCache(clock=clock)
    pipeline = cache_pipeline(
        clock, listener=listener, backend=backend, key=lambda ctx, args, kwargs: None
    )
    await pipeline.execute(upstream, "hi")
    await pipeline.execute(upstream, "hi")
    assert upstream.calls == 2 and len(backend) == 0
    assert listener.names(strategy="cache") == []


async def test_key_function_raising_bypasses_the_cache(clock, listener) -> None:
    def broken(ctx: ResilienceContext, args: Any, kwargs: Any) -> str:
        raise TypeError("unhashable")

    pipeline = cache_pipeline(clock, listener=listener, key=broken)
    assert await pipeline.execute(Upstream(), "hi") == "answer:hi"
    assert listener.named("cache_error")[0].args["reason"] == "key"


async def test_backend_returning_something_else_is_a_miss(clock) -> None:
    class Odd(BrokenBackend):
        async def get(self, key: str) -> Any:
            return "raw value"

    upstream = Upstream()
    pipeline = cache_pipeline(clock, backend=Odd(get=False, set=False))
    await pipeline.execute(upstream, "hi")
    await pipeline.execute(upstream, "hi")
    assert upstream.calls == 2


async def test_on_hit_hook_runs_and_its_errors_are_swallowed(clock) -> None:
    hits: list[str] = []

    async def on_hit(args: Any) -> None:
        hits.append(args.key)
        raise RuntimeError("observer bug")

    pipeline = cache_pipeline(clock, on_hit=on_hit)
    await pipeline.execute(Upstream(), "hi")
    assert await pipeline.execute(Upstream(), "hi") == "answer:hi"
    assert len(hits) == 1 and hits[0].startswith("llm:")


async def test_cancelled_call_propagates_and_stores_nothing(clock) -> None:
    upstream = Upstream()
    upstream.error = asyncio.CancelledError()
    backend = InMemoryTTLCache(clock=clock)
    pipeline = cache_pipeline(clock, backend=backend)
    with pytest.raises(asyncio.CancelledError):
        await pipeline.execute(upstream, "hi")
    assert len(backend) == 0


async def test_results_are_stored_as_given(clock) -> None:
    payload = {"choices": [{"text": "hi"}]}

    async def call(prompt: str) -> dict[str, Any]:
        return payload

    pipeline = cache_pipeline(clock)
    await pipeline.execute(call, "hi")
    assert await pipeline.execute(call, "hi") is payload


async def test_the_outcome_type_is_kept_for_hits(clock) -> None:
    pipeline = cache_pipeline(clock)
    await pipeline.execute(Upstream(), "hi")
    outcome = await pipeline.execute_outcome(Upstream(), "hi")
    assert isinstance(outcome, Outcome) and outcome.succeeded


async def test_strategy_is_findable_with_kind_cache(clock) -> None:
    strategy = cache_pipeline(clock).find(CacheStrategy)
    assert strategy is not None and strategy.kind == "cache"
