"""A replica SIGKILLed with durable runs mid-flight; another replica's ledger sweep hands them
to DBOS, which continues each from its last completed step (real DBOS, PostgreSQL,
redis-server, a real local HTTP tool server, replicas as processes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from netra_resilience.engine import Event
from netra_resilience.integrations.redis import RedisEventLog, redis_breaker, redis_client
from netra_resilience.integrations.sqlalchemy import SqlRunLedger
from tests.integration.durable.tool_server import ToolServer
from tests.servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[3]
BOUND = 40.0  # seconds: every wait below is bounded by it


def replica(args: list[str], errors: Path) -> subprocess.Popen[str]:
    """A replica process; its log (DBOS's, tracebacks) goes to ``errors``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.durable.app", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=errors.open("w"),
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def ready(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"replica exited with {process.wait()}"
    message: dict[str, Any] = json.loads(line)
    return message


RUNS = 10  # runs in flight on the replica that dies
# two replica processes starting DBOS, and RUNS runs of 6 recorded steps each: ~10 s on an idle
# machine, several times that on a loaded CI runner; every wait inside is bounded by BOUND
pytestmark = pytest.mark.timeout(120)


async def test_a_killed_replicas_runs_complete_on_another_without_repeating_side_effects(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    name = "d" + uuid.uuid4().hex[:10]
    ledger_url = postgres.create_database(name)
    database = ledger_url.replace("postgresql+asyncpg://", "postgresql://")
    runs = [uuid.uuid4().hex for _ in range(RUNS)]
    client = redis_client(redis_server.url)
    log = RedisEventLog(client, breaker=redis_breaker(client, timeout=1.0), prefix=name)
    with ToolServer(hold=frozenset({"/reserve", "/notify"})) as tools:
        common = ["--database", database, "--ledger", ledger_url, "--redis", redis_server.url]
        common += ["--tools", tools.url, "--prefix", name, "--lease", "0.6"]
        common += ["--run-ids", ",".join(runs)]
        first = replica([*common, "--executor", "replica-a"], tmp_path / "a.log")
        second: subprocess.Popen[str] | None = None
        try:
            assert ready(first) == {"ready": "replica-a"}
            # every run has both side effects in flight at once, then the replica dies
            held = await asyncio.to_thread(tools.wait_holding, {"/reserve", "/notify"}, RUNS, BOUND)
            assert held
            seen = {run: await log.read(run, 0) for run in runs}  # what the clients have
            first.send_signal(signal.SIGKILL)
            first.wait(BOUND)
            tools.released.set()
            second = replica(
                [*common, "--executor", "replica-b", "--until-done"], tmp_path / "b.log"
            )
            assert ready(second) == {"ready": "replica-b"}

            async def resume(run: str) -> list[Event]:
                last = int(seen[run][-1]["seq"]) if seen[run] else 0
                return [event async for event in log.follow(run, last)]

            resumed = await asyncio.wait_for(asyncio.gather(*map(resume, runs)), BOUND)
            done = await asyncio.to_thread(ready, second)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(BOUND)
    for run, after in zip(runs, resumed, strict=True):
        check_run(seen[run] + after)
    # completed steps ran exactly once per run; each idempotent call in flight was repeated
    # with its key (applied once); no unsafe call in flight was repeated
    assert tools.requests["/charge"] == tools.applied["/charge"] == RUNS
    assert tools.requests["/lookup"] == tools.requests["/llm"] == RUNS
    assert tools.requests["/reserve"] == 2 * RUNS and tools.applied["/reserve"] == RUNS
    assert len(set(tools.keys["/reserve"])) == RUNS
    assert tools.requests["/notify"] == RUNS
    # DBOS finished every workflow on the second replica, handed over by its sweep
    assert done == {
        "workflows": [["SUCCESS", "replica-b"]],
        "resumed": RUNS,
        "interrupted": 0,
    }
    engine = create_async_engine(ledger_url)
    ledger = SqlRunLedger(engine)
    try:
        entries = [await ledger.get(run) for run in runs]
    finally:
        await ledger.database.aclose()
        await engine.dispose()
    assert {(e.owner, e.status) for e in entries if e is not None} == {("replica-b", "degraded")}
    assert None not in entries
    await client.aclose()


def check_run(events: list[Event]) -> None:
    """What one client saw, before the kill and after resuming with its last seq."""
    # every seq exactly once, in order, ending with the real answer (not interrupted)
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("agent_completed") == 1
    final = events[-1]
    assert final["type"] == "agent_completed"
    assert final["data"]["status"] == "degraded"  # notify's outcome is unknown
    output = final["data"]["output"]
    assert output["answer"] == "answer to hello"
    assert output["charged"] and output["looked"] and output["reserved"]
    assert not output["notified"] and output["notify_unknown"]
    assert final["degradation"] == {"notify": "outcome_unknown"}
    completed = [e["data"] for e in events if e["type"] == "tool_completed"]
    assert [c["call_id"] for c in completed].count("charge-1") == 1
    assert {c["call_id"]: c.get("outcome_unknown") for c in completed}["notify-4"] is True
