"""Every engine event goes through the event log, in order; a detached run (``start``) is
followed and resumed from the log; a log that can only keep events locally flags
``events=local_only`` and never holds the run up nor fails it."""

from __future__ import annotations

import asyncio

import pytest

from netra_resilience.engine import (
    Event,
    InMemoryEventLog,
    RunEvents,
    RunRequest,
    Stored,
    wrap_engine,
)
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder


async def thinking_agent(request: RunRequest, events: RunEvents) -> str:
    for step in range(3):
        await events.thinking(f"step {step}")
    return "answer"


async def test_every_event_reaches_the_log_in_seq_order_before_run_returns(
    clock: FakeClock,
) -> None:
    log = InMemoryEventLog(clock=clock)
    stack = wrap_engine(thinking_agent, clock=clock, event_log=log)
    sink = Recorder()
    result = await stack.run(RunRequest("hi", run_id="r1"), sink)
    logged = await log.read("r1", 0)
    assert [e["seq"] for e in logged] == [1, 2, 3, 4, 5]
    assert [e["type"] for e in logged] == sink.types()
    assert logged[-1]["data"] == {"status": "ok", "output": "answer"}
    assert result.ok


async def test_started_run_is_followed_then_resumed_after_a_drop(clock: FakeClock) -> None:
    log = InMemoryEventLog(clock=clock)
    gate = asyncio.Event()

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("one")
        await gate.wait()  # the run goes on while the client is away
        await events.thinking("two")
        return "done"

    stack = wrap_engine(agent, clock=clock, event_log=log)
    task = await stack.start(RunRequest("hi", run_id="r2"))
    await clock.settle()
    first = log.follow("r2", 0)
    seen = [await anext(first), await anext(first)]  # agent_started, thinking "one"
    await first.aclose()  # the client drops
    gate.set()
    resumed = [e async for e in log.follow("r2", int(seen[-1]["seq"]))]
    assert [e["seq"] for e in seen + resumed] == [1, 2, 3, 4]
    assert resumed[-1]["type"] == "agent_completed"
    assert (await task).output == "done"


class LocalOnlyLog(InMemoryEventLog):
    """A shared log whose backend is down: it keeps events in this process only."""

    async def append(self, event: Event) -> Stored:
        self.put(event)
        return Stored.LOCAL_ONLY


async def test_local_only_log_flags_the_run_and_the_client_still_gets_every_event(
    clock: FakeClock,
) -> None:
    log = LocalOnlyLog(clock=clock)
    stack = wrap_engine(thinking_agent, clock=clock, event_log=log)
    sink = Recorder()
    result = await stack.run(RunRequest("hi", run_id="r3"), sink)
    assert result.status == "degraded"
    assert result.degradation == {"events": "local_only"}
    types = sink.types()
    assert types[0] == "agent_started" and types[-1] == "agent_completed"
    assert types.count("agent_thinking") == 3
    notices = [e["data"] for e in sink.events if e["type"] == "agent_degraded"]
    assert notices == [{"dependency": "events", "reason": "local_only"}]
    assert sink.final()["degradation"] == {"events": "local_only"}
    assert [e["seq"] for e in sink.events] == list(range(1, len(sink.events) + 1))


class HangingLog(InMemoryEventLog):
    async def append(self, event: Event) -> Stored:
        await asyncio.Event().wait()
        return Stored.STORED


class RaisingLog(InMemoryEventLog):
    async def append(self, event: Event) -> Stored:
        raise ConnectionError("backend gone")


async def test_a_hanging_log_costs_the_run_at_most_the_flush_timeout(clock: FakeClock) -> None:
    stack = wrap_engine(thinking_agent, clock=clock, event_log=HangingLog(clock=clock))
    sink = Recorder()
    begin = clock.monotonic()
    task = asyncio.create_task(stack.run(RunRequest("hi"), sink))
    await advance_until_done(clock, task)
    assert clock.monotonic() - begin <= 10.0  # drain + flush, each bounded by flush_timeout (5 s)
    assert task.result().output == "answer"
    assert sink.types()[-1] == "agent_completed"


async def test_a_raising_log_never_fails_the_run(clock: FakeClock) -> None:
    stack = wrap_engine(thinking_agent, clock=clock, event_log=RaisingLog(clock=clock))
    result = await stack.run(RunRequest("hi"), Recorder())
    assert result.ok and result.output == "answer"
    assert result.degradation == {"events": "local_only"}


async def test_cancelled_started_run_still_logs_its_final_event(clock: FakeClock) -> None:
    log = InMemoryEventLog(clock=clock)

    async def stuck(request: RunRequest, events: RunEvents) -> None:
        await asyncio.Event().wait()

    stack = wrap_engine(stuck, clock=clock, event_log=log)
    await stack.start(RunRequest("hi", run_id="r4"))
    await clock.settle()
    await stack.aclose()  # shutdown cancels runs still going
    events = await log.read("r4", 0)
    assert events[-1]["type"] == "agent_completed"
    assert events[-1]["data"]["cancelled"] is True


async def test_event_log_option_is_checked_at_construction() -> None:
    with pytest.raises(InvalidOptionsError, match="event_log"):
        wrap_engine(thinking_agent, event_log=object())  # type: ignore[call-overload]
    with pytest.raises(InvalidOptionsError, match="event_log"):
        await wrap_engine(thinking_agent).start(RunRequest("x"))
