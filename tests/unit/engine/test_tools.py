"""Tools: per-tool pipelines; failures and rejections come back as typed results."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from netra_resilience import Hook, InvalidOptionsError
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.effects import Effect
from netra_resilience.engine import (
    RunEvents,
    RunRequest,
    RunStatus,
    Tool,
    ToolFailure,
    ToolFailureReason,
    ToolOk,
    ToolResult,
    ToolsLayer,
    wrap_engine,
)
from netra_resilience.rate_limiter import TokenBucketLimiter
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import SECRET, Recorder


class TooManyRequests(Exception):
    """What an HTTP client raises on a 429, carrying the server's Retry-After in seconds."""

    status_code = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429 Too Many Requests (key {SECRET})")
        self.retry_after = retry_after


async def tool_engine(request: RunRequest, events: RunEvents) -> ToolResult:
    """Calls the tool named in the input once and returns what it got."""
    name, args = request.input
    return await request.tools.call(name, *args)


async def test_429_with_retry_after_pauses_the_limiter_for_everyone_no_retry_storm(
    clock: FakeClock,
) -> None:
    upstream_calls = 0

    async def search(query: str) -> str:
        nonlocal upstream_calls
        upstream_calls += 1
        if upstream_calls == 1:
            raise TooManyRequests(retry_after=5.0)
        return f"results for {query}"

    stack = wrap_engine(tool_engine, tools=[Tool("search", search, rate=10, burst=10)], clock=clock)
    limiter = stack.layer(ToolsLayer).limiter("search")
    first = asyncio.ensure_future(stack.run(RunRequest(("search", ["a"]), user_id="u0")))
    await clock.settle()  # the first call got the 429 and is waiting out Retry-After
    assert upstream_calls == 1
    assert limiter.paused_until == pytest.approx(clock.monotonic() + 5.0)

    sinks = [Recorder() for _ in range(20)]
    others = await asyncio.gather(
        *(
            stack.run(RunRequest(("search", [f"q{i}"]), user_id=f"u{i + 1}"), sinks[i])
            for i in range(20)
        )
    )
    assert upstream_calls == 1  # nobody else reached the upstream during the pause
    for result, sink in zip(others, sinks, strict=True):
        error = result.output
        assert isinstance(error, ToolFailure) and error.reason is ToolFailureReason.RATE_LIMITED
        assert error.retry_after is not None and 5.0 <= error.retry_after <= 5.2
        completed = next(e for e in sink.events if e["type"] == "tool_completed")["data"]
        assert completed["ok"] is False and completed["error"] == "rate_limited"
        assert result.status is RunStatus.DEGRADED
        assert result.degradation == {"search": "rate_limited"}

    done = await advance_until_done(clock, first)
    assert done.output == ToolOk("search", "results for a", "search-1")
    assert upstream_calls == 2  # one retry, after the server's delay


async def test_open_breaker_gives_the_agent_a_typed_error(clock: FakeClock) -> None:
    calls = 0

    async def crm(customer: str) -> dict[str, str]:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"crm down, token={SECRET}")

    breaker = CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=2, break_duration=60)
    seen: list[ToolResult] = []

    async def agent(request: RunRequest, events: RunEvents) -> str:
        result = await request.tools.call("crm", "acme")
        seen.append(result)
        if isinstance(result, ToolFailure):  # the agent reasons about the failure
            return f"I could not reach the CRM ({result.reason})."
        return "found"

    stack = wrap_engine(
        agent,
        tools=[Tool("crm", crm, effect=Effect.READ, max_attempts=1, breaker=breaker)],
        clock=clock,
    )
    sinks = [Recorder() for _ in range(3)]
    results = [await stack.run(RunRequest("q"), sink) for sink in sinks]

    assert [r.output for r in results] == [
        "I could not reach the CRM (failed).",
        "I could not reach the CRM (failed).",
        "I could not reach the CRM (circuit_open).",
    ]
    assert calls == 2  # the third call never reached the CRM
    last = seen[-1]
    assert isinstance(last, ToolFailure) and last.retry_after == pytest.approx(60.0)
    assert last.message == "The tool is temporarily unavailable."
    assert isinstance(seen[0], ToolFailure) and seen[0].error_type == "ConnectionError"
    assert results[2].degradation == {"crm": "circuit_open"}
    assert sinks[2].types() == [
        "agent_started",
        "tool_executing",
        "agent_degraded",
        "tool_completed",
        "agent_completed",
    ]
    wire = json.dumps([e for s in sinks for e in s.events])
    assert SECRET not in wire and "crm down" not in wire


async def test_transient_failure_is_retried_and_a_hung_tool_times_out(clock: FakeClock) -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionResetError("reset")
        return "ok"

    async def hung() -> str:
        await asyncio.Event().wait()
        return "never"

    stack = wrap_engine(
        tool_engine,
        tools=[
            Tool("flaky", flaky, effect=Effect.READ, retry_delay=0.5),
            Tool("hung", hung, effect=Effect.READ, timeout=2, max_attempts=1),
        ],
        clock=clock,
    )
    ok = await advance_until_done(clock, stack.run(RunRequest(("flaky", []))))
    assert ok.output == ToolOk("flaky", "ok", "flaky-1") and attempts == 2
    start = clock.monotonic()
    timed_out = await advance_until_done(clock, stack.run(RunRequest(("hung", []))))
    assert clock.monotonic() - start == pytest.approx(2.0)
    assert isinstance(timed_out.output, ToolFailure)
    assert timed_out.output.reason is ToolFailureReason.TIMEOUT
    assert timed_out.degradation == {"hung": "timeout"}


async def test_per_user_limit_keeps_users_apart(clock: FakeClock) -> None:
    async def lookup() -> str:
        return "hit"

    tool = Tool("lookup", lookup, per_user_rate=1.0, per_user_burst=1, max_wait=0)
    stack = wrap_engine(tool_engine, tools=[tool], clock=clock)

    async def call(user: str) -> Any:
        return (await stack.run(RunRequest(("lookup", []), user_id=user))).output

    assert (await call("alice")).ok
    second = await call("alice")
    assert isinstance(second, ToolFailure) and second.reason is ToolFailureReason.RATE_LIMITED
    assert (await call("bob")).ok
    await clock.advance(1.0)
    assert (await call("alice")).ok


async def test_unknown_tool_and_no_tools_middleware(clock: FakeClock) -> None:
    stack = wrap_engine(tool_engine, clock=clock)
    result = await stack.run(RunRequest(("nope", [])))
    assert isinstance(result.output, ToolFailure)
    assert result.output.reason is ToolFailureReason.UNKNOWN_TOOL
    assert result.output.as_dict() == {
        "tool": "nope",
        "ok": False,
        "error": "unknown_tool",
        "message": "No tool with this name is available.",
    }
    bare = await RunRequest().tools.call("search")
    assert isinstance(bare, ToolFailure) and not bare.ok


async def test_a_shared_limiter_can_be_passed_in(clock: FakeClock) -> None:
    async def fn() -> int:
        return 1

    shared = TokenBucketLimiter(rate=1.0, burst=1, clock=clock)
    stack = wrap_engine(
        tool_engine,
        tools=[
            Tool("a", fn, limiter=shared, max_wait=0),
            Tool("b", fn, limiter=shared, max_wait=0),
        ],
        clock=clock,
    )
    assert (await stack.run(RunRequest(("a", [])))).output.ok
    blocked = (await stack.run(RunRequest(("b", [])))).output
    assert isinstance(blocked, ToolFailure) and blocked.reason is ToolFailureReason.RATE_LIMITED


def test_tool_options_are_validated() -> None:
    async def fn() -> None:
        return None

    with pytest.raises(ValueError, match=r"Tool\.rate"):
        Tool("t", fn, rate=0)
    with pytest.raises(ValueError, match=r"Tool\.max_attempts"):
        Tool("t", fn, max_attempts=0)
    with pytest.raises(InvalidOptionsError, match=r"Tool\.rate excludes limiter="):
        Tool("t", fn, rate=1, limiter=TokenBucketLimiter(rate=1, burst=1))
    with pytest.raises(InvalidOptionsError, match=r"wrap_engine\.tools names must be unique"):
        wrap_engine(tool_engine, tools=[Tool("t", fn), Tool("t", fn)])
    with pytest.raises(InvalidOptionsError, match=r"Tool\.name") as err:
        Tool("", fn)
    assert err.value.field == "name"
    with pytest.raises(InvalidOptionsError, match=r"Tool\.fn must be an async callable"):
        Tool("t", "not callable")  # type: ignore[arg-type]

    async def hook(event: object) -> None:
        return None

    with pytest.raises(InvalidOptionsError, match=r"Hook\.name") as err:
        Hook("", hook)
    assert err.value.field == "name"
    with pytest.raises(InvalidOptionsError, match=r"wrap_engine\.hooks names must be unique"):
        wrap_engine(tool_engine, hooks=[Hook("h", hook), Hook("h", hook)])
    with pytest.raises(InvalidOptionsError, match=r"TokenBucketLimiter\.pause\.seconds") as err:
        TokenBucketLimiter(rate=1, burst=1).pause(-1)
    assert err.value.field == "seconds"
