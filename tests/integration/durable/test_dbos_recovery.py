"""A durable run's replica SIGKILLed mid-run; another replica's ledger sweep hands the run to
DBOS, which continues it from its last completed step (real DBOS, PostgreSQL, redis-server,
a real local HTTP tool server, replicas as processes)."""

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


async def test_a_killed_replicas_run_completes_on_another_without_repeating_side_effects(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    name = "d" + uuid.uuid4().hex[:10]
    ledger_url = postgres.create_database(name)
    database = ledger_url.replace("postgresql+asyncpg://", "postgresql://")
    run_id = uuid.uuid4().hex
    client = redis_client(redis_server.url)
    log = RedisEventLog(client, breaker=redis_breaker(client, timeout=1.0), prefix=name)
    with ToolServer(hold=frozenset({"/reserve", "/notify"})) as tools:
        common = ["--database", database, "--ledger", ledger_url, "--redis", redis_server.url]
        common += ["--tools", tools.url, "--prefix", name, "--lease", "0.6"]
        first = replica(
            [*common, "--executor", "replica-a", "--run-id", run_id], tmp_path / "a.log"
        )
        second: subprocess.Popen[str] | None = None
        try:
            assert ready(first) == {"ready": "replica-a"}
            # both side effects in flight at once, then the replica dies
            assert await asyncio.to_thread(tools.wait_holding, {"/reserve", "/notify"}, BOUND)
            seen: list[Event] = await log.read(run_id, 0)  # what the client has so far
            first.send_signal(signal.SIGKILL)
            first.wait(BOUND)
            tools.released.set()
            second = replica(
                [*common, "--executor", "replica-b", "--until-done", run_id], tmp_path / "b.log"
            )
            assert ready(second) == {"ready": "replica-b"}
            last = int(seen[-1]["seq"]) if seen else 0

            async def resume() -> list[Event]:
                return [event async for event in log.follow(run_id, last)]

            resumed = await asyncio.wait_for(resume(), BOUND)
            done = await asyncio.to_thread(ready, second)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(BOUND)
    events = seen + resumed
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
    completed = {e["data"]["call_id"]: e["data"] for e in events if e["type"] == "tool_completed"}
    assert completed["notify-4"]["outcome_unknown"] is True
    assert [e["data"]["call_id"] for e in events if e["type"] == "tool_completed"].count(
        "charge-1"
    ) == 1
    # completed steps ran exactly once; the idempotent call in flight was repeated with its
    # key (applied once); the unsafe one in flight was not repeated
    assert tools.requests["/charge"] == tools.applied["/charge"] == 1
    assert tools.requests["/lookup"] == 1
    assert tools.requests["/llm"] == 1
    assert tools.requests["/reserve"] == 2 and tools.applied["/reserve"] == 1
    assert len(set(tools.keys["/reserve"])) == 1
    assert tools.requests["/notify"] == 1
    # DBOS finished the workflow on the second replica, handed over by its sweep
    assert done == {"workflow": "SUCCESS", "executor": "replica-b", "resumed": 1, "interrupted": 0}
    engine = create_async_engine(ledger_url)
    ledger = SqlRunLedger(engine)
    try:
        entry = await ledger.get(run_id)
    finally:
        await ledger.database.aclose()
        await engine.dispose()
    assert entry is not None and (entry.owner, entry.status) == ("replica-b", "degraded")
    await client.aclose()
