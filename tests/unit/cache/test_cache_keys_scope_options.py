"""Cache keys: scope isolation, namespaces, stability; stale lookups for a fallback; options."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder, ResilienceContext, use_context
from netra_resilience.cache import CacheOptions, CacheStrategy, InMemoryTTLCache, stable_key
from netra_resilience.fallback import FallbackArgs, FallbackOptions
from netra_resilience.predicates import handle
from netra_resilience.testing import FakeClock
from tests.unit.cache._support import Upstream, by_arguments

ALICE = ResilienceContext("chat", tenant_id="acme", user_id="alice")
BOB = ResilienceContext("chat", tenant_id="acme", user_id="bob")


def pipeline_for(clock: FakeClock, backend: InMemoryTTLCache, name: str = "llm", **options: Any):
    options.setdefault("key", by_arguments)
    options.setdefault("ttl", 60)
    options.setdefault("stale_ttl", 600)
    return (
        PipelineBuilder(name, clock=clock)
        .add_cache(CacheOptions(backend=backend, **options))
        .build()
    )


def fresh(ctx: ResilienceContext) -> ResilienceContext:
    """A new request for the same caller (its own degradation record)."""
    return ResilienceContext("chat", tenant_id=ctx.tenant_id, user_id=ctx.user_id)


async def test_user_b_never_receives_user_a_entry(clock) -> None:
    upstream = Upstream()
    pipeline = pipeline_for(clock, InMemoryTTLCache(clock=clock))
    upstream.answer = "alice-private"
    await pipeline.execute(upstream, "my balance?", context=fresh(ALICE))
    upstream.answer = "bob-private"
    assert await pipeline.execute(upstream, "my balance?", context=fresh(BOB)) == (
        "bob-private:my balance?"
    )
    assert upstream.calls == 2


async def test_user_b_never_receives_user_a_entry_as_stale_either(clock) -> None:
    upstream = Upstream()
    pipeline = pipeline_for(clock, InMemoryTTLCache(clock=clock))
    await pipeline.execute(upstream, "my balance?", context=fresh(ALICE))
    upstream.error = ConnectionError("down")
    bob = fresh(BOB)
    with pytest.raises(ConnectionError):
        await pipeline.execute(upstream, "my balance?", context=bob)
    assert not bob.degradation


async def test_tenants_are_isolated_too(clock) -> None:
    upstream = Upstream()
    pipeline = pipeline_for(clock, InMemoryTTLCache(clock=clock))
    await pipeline.execute(upstream, "q", context=ResilienceContext("c", tenant_id="t1"))
    await pipeline.execute(upstream, "q", context=ResilienceContext("c", tenant_id="t2"))
    assert upstream.calls == 2


async def test_an_anonymous_caller_is_never_served_nor_stored_by_a_per_caller_cache(
    clock,
) -> None:
    upstream = Upstream()
    backend = InMemoryTTLCache(clock=clock)
    pipeline = pipeline_for(clock, backend)
    upstream.answer = "u1-private"
    await pipeline.execute(upstream, "my balance?", context=ResilienceContext("chat"))
    assert len(backend) == 0  # nothing stored without a caller scope
    upstream.error = ConnectionError("down")
    anonymous = ResilienceContext("chat")
    with pytest.raises(ConnectionError):
        await pipeline.execute(upstream, "my balance?", context=anonymous)
    assert not anonymous.degradation


async def test_sharing_across_users_is_an_explicit_opt_in(clock) -> None:
    upstream = Upstream()
    pipeline = pipeline_for(clock, InMemoryTTLCache(clock=clock), include_scope=False)
    upstream.answer = "public"
    await pipeline.execute(upstream, "weather?", context=fresh(ALICE))
    assert await pipeline.execute(upstream, "weather?", context=fresh(BOB)) == "public:weather?"
    assert upstream.calls == 1


async def test_key_is_stable_across_dict_ordering(clock) -> None:
    upstream = Upstream()
    pipeline = pipeline_for(clock, InMemoryTTLCache(clock=clock))
    await pipeline.execute(upstream, "hi", params={"model": "m", "temperature": 0.0}, context=ALICE)
    await pipeline.execute(upstream, "hi", params={"temperature": 0.0, "model": "m"}, context=ALICE)
    assert upstream.calls == 1
    strategy = pipeline.find(CacheStrategy)
    assert strategy is not None
    one = strategy.key_for(ALICE, ("hi",), {"a": 1, "b": 2})
    two = strategy.key_for(fresh(ALICE), ("hi",), {"b": 2, "a": 1})
    assert one == two and one is not None and one.startswith("llm:")
    assert "hi" not in one  # caller data is hashed, never in the backend key


async def test_namespace_defaults_to_the_pipeline_name(clock) -> None:
    backend = InMemoryTTLCache(clock=clock)
    upstream = Upstream()
    await pipeline_for(clock, backend, "llm-a").execute(upstream, "hi", context=fresh(ALICE))
    await pipeline_for(clock, backend, "llm-b").execute(upstream, "hi", context=fresh(ALICE))
    assert upstream.calls == 2
    named = pipeline_for(clock, backend, "llm-c", namespace="llm-a")
    await named.execute(upstream, "hi", context=fresh(ALICE))
    assert upstream.calls == 2


async def test_key_function_sees_the_wrapped_functions_arguments(clock) -> None:
    seen: list[tuple[Any, Any]] = []

    def key(ctx: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        seen.append((args, kwargs))
        return stable_key(args, kwargs)

    pipeline = pipeline_for(clock, InMemoryTTLCache(clock=clock), key=key)
    upstream = Upstream()
    ask = pipeline.wrap(upstream)
    with use_context(fresh(ALICE)):
        assert await ask("hi", model="m") == "answer:hi"
        assert await ask("hi", model="m") == "answer:hi"
    assert upstream.calls == 1
    assert seen[0] == (("hi",), {"model": "m"})


async def test_lookup_stale_lets_a_fallback_action_serve_stale(clock) -> None:
    """A cache that never serves stale itself, and a fallback outside it that does."""
    holder: dict[str, CacheStrategy] = {}

    async def serve_stale(args: FallbackArgs) -> Any:
        entry = await holder["cache"].lookup_stale(args.context, args.args, args.kwargs)
        return args.outcome if entry is None else entry.value

    never = handle(LookupError)  # the cache itself never serves stale for ConnectionError
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_fallback(FallbackOptions(action=serve_stale, reason="stale_cache"))
        .add_cache(
            CacheOptions(
                backend=InMemoryTTLCache(clock=clock),
                key=by_arguments,
                ttl=10,
                stale_ttl=100,
                stale_on=never,
            )
        )
        .build()
    )
    strategy = pipeline.find(CacheStrategy)
    assert strategy is not None
    holder["cache"] = strategy
    upstream = Upstream()
    await pipeline.execute(upstream, "hi", context=fresh(ALICE))
    await clock.advance(50)
    upstream.error = ConnectionError("down")
    ctx = fresh(ALICE)
    assert await pipeline.execute(upstream, "hi", context=ctx) == "answer:hi"
    assert ctx.degradation.as_dict() == {"llm": "stale_cache"}
    # Another user: nothing to serve, the action declines and the error comes back unmarked.
    bob = fresh(BOB)
    with pytest.raises(ConnectionError):
        await pipeline.execute(upstream, "hi", context=bob)
    assert not bob.degradation
    # Past stale_until, lookup_stale finds nothing.
    await clock.advance(60)
    assert await strategy.lookup_stale(fresh(ALICE), ("hi",), {}) is None


async def test_lookup_stale_with_a_bypassed_key_is_none(clock) -> None:
    pipeline = pipeline_for(
        clock, InMemoryTTLCache(clock=clock), key=lambda ctx, args, kwargs: None
    )
    strategy = pipeline.find(CacheStrategy)
    assert strategy is not None
    assert await strategy.lookup_stale(ALICE, ("hi",), {}) is None


def test_durations_accept_timedelta() -> None:
    options = CacheOptions(
        backend=InMemoryTTLCache(),
        key=by_arguments,
        ttl=timedelta(minutes=5),
        stale_ttl=timedelta(hours=1),
        backend_timeout=timedelta(milliseconds=100),
    )
    assert (options.ttl, options.stale_ttl, options.backend_timeout) == (300.0, 3600.0, 0.1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ttl": -1}, "ttl"),
        ({"stale_ttl": -5}, "stale_ttl"),
        ({"ttl": 0, "stale_ttl": 0}, "stale_ttl"),
        ({"backend": object()}, "backend"),
        ({"key": "prompt"}, "key"),
        ({"should_cache": 1}, "should_cache"),
        ({"stale_on": None}, "stale_on"),
        ({"backend_timeout": -0.1}, "backend_timeout"),
        ({"backend_timeout": 0}, "backend_timeout"),
        ({"namespace": ""}, "namespace"),
        ({"serve_fresh": "yes"}, "serve_fresh"),
        ({"include_scope": 0}, "include_scope"),
        ({"on_hit": 3}, "on_hit"),
        ({"on_stale": "x"}, "on_stale"),
    ],
)
def test_invalid_options_name_the_field(overrides: dict[str, Any], field: str) -> None:
    options: dict[str, Any] = {"backend": InMemoryTTLCache(), "key": by_arguments, "ttl": 60}
    options.update(overrides)
    with pytest.raises(InvalidOptionsError, match=rf"CacheOptions\.{field}") as info:
        CacheOptions(**options)
    assert info.value.field == field
