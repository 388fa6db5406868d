"""Tool effect classes: an undeclared tool is unsafe, idempotency keys, outcome unknown."""

from __future__ import annotations

import asyncio
import json

import pytest

from netra_resilience import InvalidOptionsError
from netra_resilience.effects import Effect, current_effect_scope, derive_idempotency_key
from netra_resilience.engine import (
    RunEvents,
    RunRequest,
    RunStatus,
    Tool,
    ToolFailure,
    ToolFailureReason,
    ToolOk,
    ToolResult,
    wrap_engine,
)
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder


async def call_once(request: RunRequest, events: RunEvents) -> ToolResult:
    return await request.tools.call("send", "hello")


class Upstream:
    """Commits every call it receives (an e-mail sent), then stalls or answers."""

    def __init__(self, *, stall: bool = True, failures: list[BaseException] | None = None):
        self.stall = stall
        self.failures = list(failures or [])
        self.committed: list[str | None] = []
        self.keys: list[str | None] = []

    async def send(self, text: str, idempotency_key: str | None = None) -> str:
        self.keys.append(idempotency_key)
        if self.failures:
            raise self.failures.pop(0)  # refused before anything was processed
        if idempotency_key is None or idempotency_key not in self.committed:
            self.committed.append(idempotency_key)
        if self.stall:
            await asyncio.Event().wait()
        return "sent"


def test_an_undeclared_tool_is_unsafe_and_a_bad_effect_names_the_field() -> None:
    async def fn() -> None:
        return None

    assert Tool("t", fn).effect is Effect.UNSAFE
    assert Tool("t", fn, effect=Effect.READ).effect is Effect.READ
    with pytest.raises(InvalidOptionsError) as info:
        Tool("t", fn, effect="sometimes")  # type: ignore[arg-type]
    assert info.value.field == "effect" and "read, idempotent, unsafe" in str(info.value)


async def test_undeclared_tool_that_committed_then_stalled_runs_once_and_reports_unknown(
    clock: FakeClock,
) -> None:
    upstream = Upstream()
    stack = wrap_engine(call_once, tools=[Tool("send", upstream.send, timeout=2)], clock=clock)
    sink = Recorder()
    result = await advance_until_done(clock, stack.run(RunRequest(run_id="r1"), sink))

    assert len(upstream.committed) == 1 and len(upstream.keys) == 1  # never repeated
    failure = result.output
    assert isinstance(failure, ToolFailure) and failure.outcome_unknown
    assert failure.reason is ToolFailureReason.OUTCOME_UNKNOWN
    assert failure.call_id == "send-1"
    assert failure.idempotency_key == derive_idempotency_key("r1", "send-1")
    assert "check before calling it again" in failure.message
    assert failure.as_dict()["error"] == "outcome_unknown"
    assert result.status is RunStatus.DEGRADED
    assert result.degradation == {"send": "outcome_unknown"}
    executing = next(e for e in sink.events if e["type"] == "tool_executing")["data"]
    assert executing["effect"] == "unsafe"
    completed = next(e for e in sink.events if e["type"] == "tool_completed")
    assert completed["data"]["error"] == "outcome_unknown"
    assert completed["data"]["outcome_unknown"] is True
    assert completed["degradation"] == {"send": "outcome_unknown"}
    notices = [e["data"] for e in sink.events if e["type"] == "agent_degraded"]
    assert notices == [  # the attempt timed out; then the call's outcome was unknown
        {"dependency": "send", "reason": "timeout"},
        {"dependency": "send", "reason": "outcome_unknown"},
    ]


async def test_idempotent_tool_retries_with_the_same_key(clock: FakeClock) -> None:
    upstream = Upstream()
    tool = Tool("send", upstream.send, effect=Effect.IDEMPOTENT, timeout=2, retry_delay=0.1)
    stack = wrap_engine(call_once, tools=[tool], clock=clock)
    result = await advance_until_done(clock, stack.run(RunRequest(run_id="r1")))

    key = derive_idempotency_key("r1", "send-1")
    assert upstream.keys == [key, key, key]  # three attempts, one key
    assert upstream.committed == [key]  # the upstream's dedup kept one effect
    assert isinstance(result.output, ToolFailure) and result.output.outcome_unknown


async def test_read_tool_is_retried_on_timeouts_and_gets_no_key(clock: FakeClock) -> None:
    calls: list[str | None] = []

    async def lookup(idempotency_key: str | None = None) -> str:
        calls.append(idempotency_key)
        if len(calls) < 3:
            await asyncio.Event().wait()
        return "found"

    async def engine(request: RunRequest, events: RunEvents) -> ToolResult:
        return await request.tools.call("lookup")

    tool = Tool("lookup", lookup, effect=Effect.READ, timeout=2, retry_delay=0.1)
    stack = wrap_engine(engine, tools=[tool], clock=clock)
    result = await advance_until_done(clock, stack.run(RunRequest()))
    assert result.output == ToolOk("lookup", "found", "lookup-1")
    assert calls == [None, None, None]


async def test_read_tool_that_times_out_is_a_plain_timeout(clock: FakeClock) -> None:
    async def lookup() -> str:
        await asyncio.Event().wait()
        return "never"

    async def engine(request: RunRequest, events: RunEvents) -> ToolResult:
        return await request.tools.call("lookup")

    tool = Tool("lookup", lookup, effect=Effect.READ, timeout=1, max_attempts=2, retry_delay=0.1)
    result = await advance_until_done(
        clock, wrap_engine(engine, tools=[tool], clock=clock).run(RunRequest())
    )
    assert isinstance(result.output, ToolFailure)
    assert result.output.reason is ToolFailureReason.TIMEOUT  # nothing to check: no effect


async def test_unsafe_tool_refused_before_sending_is_retried(clock: FakeClock) -> None:
    class Unavailable(Exception):
        status_code = 503

    upstream = Upstream(
        stall=False, failures=[ConnectionRefusedError(111, "refused"), Unavailable()]
    )
    stack = wrap_engine(
        call_once, tools=[Tool("send", upstream.send, retry_delay=0.1)], clock=clock
    )
    result = await advance_until_done(clock, stack.run(RunRequest(run_id="r1")))
    assert isinstance(result.output, ToolOk) and result.output.value == "sent"
    assert len(upstream.keys) == 3 and len(set(upstream.keys)) == 1
    assert len(upstream.committed) == 1


async def test_unsafe_tool_answered_with_an_error_is_not_repeated(clock: FakeClock) -> None:
    class ServerError(Exception):
        status_code = 500

    upstream = Upstream(stall=False, failures=[ServerError()])
    stack = wrap_engine(call_once, tools=[Tool("send", upstream.send)], clock=clock)
    result = await advance_until_done(clock, stack.run(RunRequest()))
    assert isinstance(result.output, ToolFailure)
    assert result.output.reason is ToolFailureReason.FAILED  # it answered: nothing unknown
    assert len(upstream.keys) == 1


async def test_the_agent_gives_call_id_and_key_and_they_hold_across_a_resumed_run(
    clock: FakeClock,
) -> None:
    scopes: list[tuple[str, str | None, Effect]] = []

    async def refund(amount: int) -> str:  # no key parameter: reads the scope instead
        scope = current_effect_scope()
        assert scope is not None
        scopes.append((scope.call_id, scope.idempotency_key, scope.effect))
        return f"refunded {amount}"

    async def engine(request: RunRequest, events: RunEvents) -> list[ToolResult]:
        tools = request.tools
        return [
            await tools.call("refund", 5, call_id="call_abc"),
            await tools.call("refund", 7, idempotency_key="order-42"),
        ]

    stack = wrap_engine(
        engine, tools=[Tool("refund", refund, effect=Effect.IDEMPOTENT)], clock=clock
    )
    first = await stack.run(RunRequest(run_id="run-7"))
    resumed = await stack.run(RunRequest(run_id="run-7"))  # the same run, resumed
    other = await stack.run(RunRequest(run_id="run-8"))
    assert scopes[:2] == [
        ("call_abc", derive_idempotency_key("run-7", "call_abc"), Effect.IDEMPOTENT),
        ("refund-2", "order-42", Effect.IDEMPOTENT),
    ]
    assert scopes[2:4] == scopes[:2]  # the resumed run sends the same keys
    assert scopes[4][1] != scopes[0][1]  # another run, another key
    assert [r.idempotency_key for r in first.output] == [scopes[0][1], "order-42"]
    assert resumed.ok and other.ok
    with pytest.raises(InvalidOptionsError) as info:

        async def bad(request: RunRequest, events: RunEvents) -> ToolResult:
            return await request.tools.call("refund", 1, idempotency_key="has space")

        (
            await wrap_engine(bad, tools=[Tool("refund", refund)], clock=clock).run(RunRequest())
        ).unwrap()
    assert info.value.field == "idempotency_key"


async def test_events_carry_no_key(clock: FakeClock) -> None:
    upstream = Upstream(stall=False)
    sink = Recorder()
    stack = wrap_engine(call_once, tools=[Tool("send", upstream.send)], clock=clock)
    await stack.run(RunRequest(run_id="r1"), sink)
    assert upstream.keys[0] is not None
    assert upstream.keys[0] not in json.dumps(sink.events)
