"""DurableEngine in one process on DBOS with SQLite: a run is a workflow whose tool calls and
LLM call are recorded steps (through the run's pipelines), a run id runs once, and the ledger
hook hands over only a pending workflow of its dead owner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dbos import DBOS

from netra_resilience import Resilience
from netra_resilience.engine import InMemoryEventLog, LedgerEntry, RunRequest
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.dbos import DurableEngine
from tests.integration.durable.app import build, dbos_config
from tests.integration.durable.tool_server import ToolServer


@pytest.fixture
async def launched(tmp_path: Path) -> AsyncIterator[None]:
    """DBOS on a fresh SQLite file, launched in the test's loop; destroyed afterwards."""
    DBOS(config=dbos_config(f"sqlite:///{tmp_path}/dbos.sqlite", "replica-a"))
    try:
        yield
    finally:
        DBOS.destroy(destroy_registry=True)


async def test_a_run_is_a_workflow_of_recorded_steps_and_runs_once(launched: None) -> None:
    log = InMemoryEventLog()
    async with Resilience() as resilience:
        with ToolServer() as tools:
            durable = build(resilience, tools.url, log)
            DBOS.launch()
            request = RunRequest("hello", user_id="u1")
            run_id = await durable.start(request)
            assert await log.last_seq(run_id) >= 1  # a follower finds it at once
            result = await durable.result(run_id)
            assert await durable.start(request) == run_id  # the same run id: not again
            assert await durable.result(run_id) == result
    assert result["status"] == "ok"
    assert result["output"]["answer"] == "answer to hello"
    events = await log.read(run_id, 0)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "agent_completed"
    assert dict(tools.requests) == {
        "/charge": 1,
        "/lookup": 1,
        "/llm": 1,
        "/reserve": 1,
        "/notify": 1,
    }
    steps = [s["function_name"] for s in await DBOS.list_workflow_steps_async(run_id)]
    # side effects record their beginning first; a read and the LLM call are one step each
    assert steps[:4] == [
        "tool:charge:charge-1:begin",
        "tool:charge:charge-1",
        "tool:lookup:lookup-2",
        "llm",
    ]
    # concurrent calls: each drew its two step ids at once, so the ids do not depend on
    # which call ended first (a recovering execution finds each record where it left it)
    assert steps[4:] == [
        "tool:reserve:reserve-3:begin",
        "tool:reserve:reserve-3",
        "tool:notify:notify-4:begin",
        "tool:notify:notify-4",
    ]


async def test_recover_hands_over_only_a_pending_workflow_of_its_dead_owner(
    launched: None,
) -> None:
    log = InMemoryEventLog()
    async with Resilience() as resilience:
        with ToolServer(hold=frozenset({"/reserve"})) as tools:
            durable = build(resilience, tools.url, log)
            DBOS.launch()
            run_id = await durable.start(RunRequest("hello"))
            assert await asyncio.to_thread(tools.wait_holding, {"/reserve"}, 1, 20.0)
            # pending on this live executor: a sweep that thinks another owner died leaves it
            assert not await durable.recover(LedgerEntry(run_id, "replica-x", "running", 0.0))
            assert not await durable.recover(
                LedgerEntry("no-such-run", "replica-a", "running", 0.0)
            )
            tools.released.set()
            result = await durable.result(run_id)
            # ended: nothing to resume (the sweep then appends no second final event)
            assert not await durable.recover(LedgerEntry(run_id, "replica-a", "running", 0.0))
    assert result["status"] == "ok"
    assert tools.requests["/reserve"] == 1


def test_invalid_options_name_the_field() -> None:
    engine = Resilience().engine(lambda request, events: asyncio.sleep(0))
    with pytest.raises(InvalidOptionsError, match="engine"):
        DurableEngine(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match="name"):
        DurableEngine(engine, name="")
    with pytest.raises(InvalidOptionsError, match="queue"):
        DurableEngine(engine, queue="")
    with pytest.raises(InvalidOptionsError, match="leases"):
        DurableEngine(engine, leases=object())  # type: ignore[arg-type]
