"""Fallback: when it runs, what it answers, and when it marks the request degraded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, Outcome, PipelineBuilder, ResilienceContext
from netra_resilience.fallback import FallbackArgs, FallbackOptions, FallbackStrategy
from netra_resilience.predicates import handle, handle_result
from netra_resilience.testing import RecordingListener


async def fail() -> str:
    raise ValueError("provider down")


async def ok() -> str:
    return "live"


def recorder(calls: list[FallbackArgs]) -> Any:
    def action(args: FallbackArgs) -> str:
        calls.append(args)
        return "canned"

    return action


def build(listener: RecordingListener | None = None, **options: Any):
    return (
        PipelineBuilder("llm", telemetry=listener).add_fallback(FallbackOptions(**options)).build()
    )


async def test_sync_action_answers_a_failed_call_and_marks_fallback(listener) -> None:
    pipeline = build(listener, action=lambda args: "canned")
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(fail, context=ctx) == "canned"
    assert ctx.degradation.as_dict() == {"llm": "fallback"}
    [event] = listener.named("fallback")
    assert event.args["error_type"] == "ValueError"
    assert event.source.strategy == "fallback"


async def test_async_action_is_awaited() -> None:
    seen: list[FallbackArgs] = []

    async def action(args: FallbackArgs) -> str:
        seen.append(args)
        await asyncio.sleep(0)
        return "async canned"

    ctx = ResilienceContext("chat")
    assert await build(action=action).execute(fail, context=ctx) == "async canned"
    assert isinstance(seen[0].outcome.exception, ValueError)
    assert seen[0].context is ctx


async def test_sync_action_returning_an_awaitable_is_awaited() -> None:
    async def later() -> str:
        return "later"

    assert await build(action=lambda args: later()).execute(fail) == "later"


async def test_result_predicate_triggers_the_fallback() -> None:
    async def unavailable() -> int:
        return 503

    pipeline = build(action=lambda args: 200, should_handle=handle_result(lambda r: r == 503))
    ctx = ResilienceContext("chat")
    assert await pipeline.execute(unavailable, context=ctx) == 200
    assert ctx.degradation.reason("llm") == "fallback"


async def test_action_may_return_an_outcome() -> None:
    pipeline = build(action=lambda args: Outcome("wrapped"))
    assert await pipeline.execute(fail) == "wrapped"


async def test_action_returning_the_original_outcome_declines_without_marking() -> None:
    pipeline = build(action=lambda args: args.outcome)
    ctx = ResilienceContext("chat")
    with pytest.raises(ValueError, match="provider down"):
        await pipeline.execute(fail, context=ctx)
    assert not ctx.degradation


async def test_action_raising_becomes_the_outcome_with_the_original_chained(listener) -> None:
    def action(args: FallbackArgs) -> str:
        raise KeyError("no canned reply")

    ctx = ResilienceContext("chat")
    with pytest.raises(KeyError) as info:
        await build(listener, action=action).execute(fail, context=ctx)
    assert isinstance(info.value.__context__, ValueError)
    assert not ctx.degradation  # the fallback did not produce the answer
    assert listener.named("fallback_failed")[0].args["error_type"] == "KeyError"


async def test_action_reraising_the_original_does_not_chain_it_to_itself() -> None:
    def action(args: FallbackArgs) -> str:
        assert args.outcome.exception is not None
        raise args.outcome.exception

    with pytest.raises(ValueError) as info:
        await build(action=action).execute(fail)
    assert info.value.__context__ is not info.value


async def test_no_fallback_on_success() -> None:
    calls: list[FallbackArgs] = []
    ctx = ResilienceContext("chat")
    pipeline = build(action=recorder(calls))
    assert await pipeline.execute(ok, context=ctx) == "live"
    assert calls == [] and not ctx.degradation


async def test_unhandled_exception_passes_through() -> None:
    pipeline = build(action=lambda args: "canned", should_handle=handle(KeyError))
    with pytest.raises(ValueError):
        await pipeline.execute(fail)


async def test_cancelled_error_never_falls_back() -> None:
    calls: list[FallbackArgs] = []
    pipeline = build(action=recorder(calls))

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await pipeline.execute(cancelled)
    assert calls == []


async def test_on_fallback_hooks_run_and_their_errors_are_swallowed() -> None:
    seen: list[str] = []

    async def async_hook(args: FallbackArgs) -> None:
        seen.append("async")

    def broken_hook(args: FallbackArgs) -> None:
        raise RuntimeError("observer bug")

    assert await build(action=lambda a: "x", on_fallback=async_hook).execute(fail) == "x"
    assert await build(action=lambda a: "y", on_fallback=broken_hook).execute(fail) == "y"
    assert seen == ["async"]


async def test_custom_reason_is_marked() -> None:
    ctx = ResilienceContext("chat")
    await build(action=lambda a: "hi", reason="canned_reply").execute(fail, context=ctx)
    assert ctx.degradation.as_dict() == {"llm": "canned_reply"}


async def test_action_that_marks_its_own_dependency_keeps_that_mark() -> None:
    def stale(args: FallbackArgs) -> str:
        args.context.degradation.mark("llm", "stale_cache")
        args.context.degradation.mark("search", "skipped")
        return "stale answer"

    ctx = ResilienceContext("chat")
    assert await build(action=stale).execute(fail, context=ctx) == "stale answer"
    assert ctx.degradation.as_dict() == {"llm": "stale_cache", "search": "skipped"}


async def test_action_marking_another_dependency_still_gets_our_mark() -> None:
    def other(args: FallbackArgs) -> str:
        args.context.degradation.mark("backup-llm", "timeout")
        return "from backup"

    ctx = ResilienceContext("chat")
    await build(action=other).execute(fail, context=ctx)
    assert ctx.degradation.as_dict() == {"backup-llm": "timeout", "llm": "fallback"}


async def test_action_sees_the_call_arguments_also_through_wrap() -> None:
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def action(args: FallbackArgs) -> str:
        seen.append((args.args, args.kwargs))
        return "canned"

    pipeline = build(action=action)

    async def ask(prompt: str, *, model: str) -> str:
        raise ValueError(prompt)

    assert await pipeline.execute(ask, "hi", model="m1") == "canned"
    assert await pipeline.wrap(ask)("yo", model="m2") == "canned"
    assert seen == [(("hi",), {"model": "m1"}), (("yo",), {"model": "m2"})]


async def test_strategy_kind_and_lookup() -> None:
    pipeline = build(action=lambda a: None)
    strategy = pipeline.find(FallbackStrategy)
    assert strategy is not None and strategy.kind == "fallback"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"action": "not callable"}, "action"),
        ({"action": lambda a: 1, "should_handle": 3}, "should_handle"),
        ({"action": lambda a: 1, "reason": ""}, "reason"),
        ({"action": lambda a: 1, "on_fallback": "nope"}, "on_fallback"),
    ],
)
def test_invalid_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError, match=f"FallbackOptions.{field}") as info:
        FallbackOptions(**options)
    assert info.value.field == field
