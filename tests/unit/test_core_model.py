"""Outcome, context, degradation, predicates, pipeline composition and the fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import (
    BrokenCircuitError,
    Degradation,
    ExecutionRejectedError,
    InvalidOptionsError,
    Outcome,
    PipelineBuilder,
    ResilienceContext,
    TimeoutRejectedError,
    current_degradation,
    use_context,
)
from netra_resilience.context import current_context
from netra_resilience.predicates import ANY_EXCEPTION, TRANSIENT_EXCEPTION, handle, handle_result
from netra_resilience.strategy import BuildContext, Callback, Strategy


class Tag(Strategy):
    """Records the order strategies run in."""

    kind = "tag"

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        self.log.append(f"enter {self.label}")
        outcome = await callback(context, state)
        self.log.append(f"exit {self.label}")
        return outcome


class TagOptions:
    def __init__(self, label: str, log: list[str]) -> None:
        self.label, self.log = label, log

    def create_strategy(self, build: BuildContext) -> Strategy:
        return Tag(self.label, self.log)


async def test_first_added_strategy_is_outermost() -> None:
    log: list[str] = []
    pipeline = PipelineBuilder("dep").add(TagOptions("a", log)).add(TagOptions("b", log)).build()

    async def work() -> int:
        log.append("work")
        return 7

    assert await pipeline.execute(work) == 7
    assert log == ["enter a", "enter b", "work", "exit b", "exit a"]


async def test_pipeline_reraises_same_exception_and_outcome_captures_it() -> None:
    pipeline = PipelineBuilder("dep").build()
    boom = ValueError("boom")

    async def fail() -> None:
        raise boom

    with pytest.raises(ValueError) as info:
        await pipeline.execute(fail)
    assert info.value is boom
    outcome = await pipeline.execute_outcome(fail)
    assert outcome.exception is boom and not outcome.succeeded


async def test_cancelled_error_is_never_captured_in_an_outcome() -> None:
    pipeline = PipelineBuilder("dep").build()

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await pipeline.execute_outcome(cancelled)


async def test_builder_is_single_use_and_rejects_non_options() -> None:
    builder = PipelineBuilder("dep")
    builder.build()
    with pytest.raises(RuntimeError):
        builder.build()
    with pytest.raises(InvalidOptionsError, match=r"PipelineBuilder\.add object does not"):
        PipelineBuilder("dep").add(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"PipelineBuilder\.name") as err:
        PipelineBuilder("")
    assert err.value.field == "name"


async def test_explicit_context_is_bound_while_the_callable_runs() -> None:
    pipeline = PipelineBuilder("dep").build()
    ctx = ResilienceContext("op", user_id="u1")

    async def read() -> ResilienceContext | None:
        return current_context()

    assert await pipeline.execute(read, context=ctx) is ctx
    assert current_context() is None
    with use_context(ctx):
        assert await pipeline.execute(read) is ctx
        assert current_degradation() is ctx.degradation


async def test_wrap_decorator_passes_arguments() -> None:
    pipeline = PipelineBuilder("dep").build()

    @pipeline.wrap
    async def add(a: int, b: int = 0) -> int:
        return a + b

    assert await add(2, b=3) == 5


def test_degradation_latest_reason_wins_and_header_is_safe() -> None:
    d = Degradation()
    assert not d and d.header_value() == ""
    seen: list[str] = []
    d.subscribe(lambda _d, entry: seen.append(entry.reason))
    d.mark("llm", "timeout")
    d.mark("llm", "stale_cache")
    d.mark("analytics", "skipped")
    d.mark("evil\r\nSet-Cookie: x", "a b,c")
    assert d.reason("llm") == "stale_cache"
    assert d.header_value() == "llm=stale_cache, analytics=skipped, evil_Set-Cookie:_x=a_b_c"
    assert seen == ["timeout", "stale_cache", "skipped", "a_b_c"]
    assert [e.reason for e in d.history][:2] == ["timeout", "stale_cache"]


def test_context_scope_properties_and_child() -> None:
    key = "attempts"
    ctx = ResilienceContext("op", user_id="u", tenant_id="t")
    ctx.properties[key] = 3
    assert ctx.properties.get(key) == 3
    assert ResilienceContext("x").scope == ""
    assert ctx.scope == "1:t/u"
    collide_a = ResilienceContext("x", tenant_id="a/b", user_id="c").scope
    collide_b = ResilienceContext("x", tenant_id="a", user_id="b/c").scope
    assert collide_a != collide_b
    child = ctx.child("inner")
    assert child.degradation is ctx.degradation and child.properties.get(key) == 3


def test_predicates_compose() -> None:
    p = handle(ConnectionError) | handle_result(lambda r: r == 503)
    assert p(Outcome(None, ConnectionError()))
    assert p(Outcome(503))
    assert not p(Outcome(200))
    assert not p(Outcome(None, ValueError()))
    assert ANY_EXCEPTION(Outcome(None, BrokenCircuitError()))
    assert not TRANSIENT_EXCEPTION(Outcome(None, BrokenCircuitError()))
    assert TRANSIENT_EXCEPTION(Outcome(None, TimeoutRejectedError()))
    assert isinstance(TimeoutRejectedError(), TimeoutError)
    assert isinstance(BrokenCircuitError(retry_after=2.0), ExecutionRejectedError)
    with pytest.raises(ValueError):
        handle()


def test_retry_after_parsing_is_bounded() -> None:
    from datetime import UTC, datetime

    from netra_resilience.hints import (
        parse_retry_after_headers,
        parse_retry_after_value,
        retry_after_of,
    )

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after_value("7", now) == 7
    assert parse_retry_after_value("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after_value("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    # RFC 9110 delay-seconds: ASCII digits only (a decimal fraction tolerated)
    arabic_indic_30, fullwidth_30 = "\u0663\u0660", "\uff13\uff10"
    bad_values = ["", "-1", "abc", "nan", "inf", "1e400", "1e5", "1_0", "x" * 500]
    bad_values += [arabic_indic_30, fullwidth_30]
    for bad in bad_values:
        assert parse_retry_after_value(bad, now) is None, bad
    # a long back-off is valid, not malformed: consumers cap it (retry gives up above its cap)
    assert parse_retry_after_value("999999999", now) == 999999999
    assert parse_retry_after_value("100000", now) == 100000
    far = parse_retry_after_value("Fri, 31 Dec 9999 23:59:59 GMT", now)
    assert far is not None and far > 86_400 * 365 * 7000
    arabic_ms = {"retry-after-ms": "\u0663\u0660\u0660", "retry-after": "9"}
    assert parse_retry_after_headers(arabic_ms, now) == 9
    assert parse_retry_after_headers({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    assert parse_retry_after_headers({"retry-after-ms": "junk", "retry-after": "9"}, now) == 9
    assert parse_retry_after_headers({}, now) is None

    class Hinted(Exception):
        retry_after = 3.0

    assert retry_after_of(Outcome(None, Hinted())) == 3.0
    assert retry_after_of(Outcome(None, BrokenCircuitError(retry_after=5))) is None
    assert retry_after_of(Outcome(1)) is None


def test_every_rejection_has_a_readable_message() -> None:
    assert str(TimeoutRejectedError(timeout=5, dependency="llm")) == (
        "operation timed out (dependency llm, after 5 s)"
    )
    assert str(TimeoutRejectedError("attempt deadline")) == "attempt deadline"
    assert str(BrokenCircuitError(retry_after=2.5)) == "circuit is open (retry after 2.5 s)"
    for error in (ExecutionRejectedError(), TimeoutRejectedError(), BrokenCircuitError()):
        assert str(error), type(error).__name__
