"""A recovered run whose replay reaches past the log's top: the events the dead execution
made after its last logged one (a recorded step done, its next event never logged) are new
and delivered, so the log has no gap (a follower resuming would be told 'trimmed')."""

from __future__ import annotations

from typing import Any

from netra_resilience.engine import InMemoryEventLog, RunEvents, RunRequest, wrap_engine
from netra_resilience.testing import FakeClock
from tests.unit.engine.test_run_steps import MemorySteps


async def _echo(value: str) -> str:
    return value


async def test_events_after_the_logs_top_made_during_the_replay_are_delivered(
    clock: FakeClock,
) -> None:
    log = InMemoryEventLog(clock=clock)
    for seq, kind in ((1, "agent_started"), (2, "agent_thinking")):  # what reached the log
        await log.append({"type": kind, "run_id": "r", "seq": seq, "data": {}})
    store: dict[str, Any] = {"where": "replica-a"}  # the dead execution recorded this step

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("first")  # seq 2: delivered before, withheld
        where = await events.step("where", _echo, "replica-b")  # replayed: "replica-a"
        await events.thinking("started", replica=where)  # seq 3: never reached the log
        await events.step("llm", _echo, "new")  # runs for real
        await events.thinking("after")
        return where

    engine = wrap_engine(agent, clock=clock, event_log=log)
    result = await engine.run(RunRequest("q", run_id="r"), steps=MemorySteps(store, 2))
    assert result.output == "replica-a"
    events = await log.read("r", 0)
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))  # no gap
    assert [(e["type"], e["data"].get("text")) for e in events[2:]] == [
        ("agent_thinking", "started"),
        ("agent_thinking", "after"),
        ("agent_completed", None),
    ]
    assert events[2]["data"]["replica"] == "replica-a"
