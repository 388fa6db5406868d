"""Durable runs behind a real HAProxy: two replicas of the DBOS app (``web.py``, separate
processes) share a real PostgreSQL (DBOS's system database, the run ledger) and a real
redis-server (the event log); every tool and the LLM are calls to a real local HTTP tool
server that counts each run's requests.

* 100 clients start runs through the balancer (WebSocket, or SSE with ``Last-Event-ID``);
  mid-run, one replica is SIGKILLed. Its clients reconnect through HAProxy with their last
  seq and land on the survivor, whose sweep hands the dead replica's runs to DBOS: they
  continue there from their last completed step. Shown: every client gets a terminal event,
  its seqs exactly 1..final; >= 99 % of the killed replica's runs in flight end with their
  real answer (not ``interrupted``); no ``unsafe`` call is repeated for any run.

The clients are the HAProxy replica-lost test's own (``tests/integration/lb``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from tests.integration.durable.conftest import start_or_skip
from tests.integration.durable.tool_server import ToolServer
from tests.integration.lb.test_replica_lost import Client, drive_sse, drive_ws
from tests.lb import ROOT, HAProxyServer, _listening, _Process
from tests.servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailableError,
    _wait_until,
    free_port,
)

CLIENTS = 100
SETTLE = float(os.environ.get("NETRA_DBOS_LB_SETTLE", "60"))  # seconds after the SIGKILL
MESSAGES = {"websocket": "tell me", "sse": "hi"}  # what drive_ws / drive_sse send
TOOL_LATENCY = 0.15  # seconds per tool/LLM call: a run lasts ~1 s, many are mid-flight
LEASE = 1.5  # seconds; a survivor's sweep takes the dead replica's runs over after it
UNSAFE = ("/charge", "/notify")
# two DBOS replicas starting, 100 runs of 8 recorded steps each on a loaded 2-core runner;
# every wait inside is bounded
pytestmark = pytest.mark.timeout(120)


class DurableReplica(_Process):
    """``python -m tests.integration.durable.web`` on a free port, DBOS executor ``name``."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self.port = free_port()
        self.args = [*args, "--executor", name, "--port", str(self.port)]

    def start(self) -> Self:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.durable.web", *self.args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),  # DBOS's log and tracebacks: shown when a test fails
        )
        _wait_until(self._ready, f"durable replica {self.name} on port {self.port}", 30.0)
        return self

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerUnavailableError(f"durable replica {self.name} exited at startup")
        return _listening(self.port)


@dataclass
class DurableClient(Client):
    """A replica-lost client that also notes where its run started (its first event says)."""

    started_on: str | None = None

    def got(self, event: dict[str, Any], mid_run: asyncio.Event, started: list[int]) -> bool:
        replica = (event.get("data") or {}).get("replica")
        if replica and self.started_on is None:
            self.started_on = str(replica)
        return super().got(event, mid_run, started)


@pytest.fixture(scope="module")
def haproxy_binary() -> str:
    return start_or_skip(lambda: HAProxyServer([])).binary


@pytest.fixture
def cluster_args(postgres: PostgresServer, tmp_path: Path) -> Iterator[list[str]]:
    name = "d" + uuid.uuid4().hex[:10]
    ledger = postgres.create_database(name)
    database = ledger.replace("postgresql+asyncpg://", "postgresql://")
    yield [
        *("--database", database, "--ledger", ledger, "--prefix", name),
        *("--lease", str(LEASE), "--logs", str(tmp_path)),
    ]


def start_cluster(args: list[str], redis_url: str, tools: ToolServer, haproxy: str) -> Any:
    logs = Path(args[args.index("--logs") + 1])
    common = [*args[: args.index("--logs")], "--redis", redis_url, "--tools", tools.url]
    a = DurableReplica("replica-a", common, logs / "a.log")
    b = DurableReplica("replica-b", common, logs / "b.log")
    return a, b, lambda: HAProxyServer([a.port, b.port], binary=haproxy)


def drivers(transport: str, clients: list[DurableClient], url: str) -> tuple[Any, asyncio.Event]:
    mid_run = asyncio.Event()
    started = [0, 0]
    if transport == "websocket":
        ws = url.replace("http://", "ws://") + "/v1/runs/ws"
        tasks = [asyncio.create_task(drive_ws(c, ws, mid_run, started)) for c in clients]
    else:
        tasks = [asyncio.create_task(drive_sse(c, url, mid_run, started)) for c in clients]
    return tasks, mid_run


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0


def real_answer(client: DurableClient, message: str) -> bool:
    final = client.final or {}
    data = final.get("data") or {}
    output = data.get("output") or {}
    return data.get("status") in {"ok", "degraded"} and output.get("answer") == (
        f"answer to {message}"
    )


async def diagnose(args: list[str], waiting: list[DurableClient]) -> str:
    """What the ledger and DBOS say of runs no client saw end, and the survivor's log."""
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    runs = [c.run_id for c in waiting[:5]]
    engine = create_async_engine(args[args.index("--ledger") + 1])
    async with engine.connect() as conn:
        ledger = (await conn.execute(sqlalchemy.text("select * from netra_runs"))).all()
        dbos = (
            await conn.execute(
                sqlalchemy.text(
                    "select workflow_uuid, status, executor_id from dbos.workflow_status"
                )
            )
        ).all()
    await engine.dispose()
    shown = [
        (
            c.user,
            c.started_on,
            c.seqs[-3:],
            [r for r in ledger if r[0] == c.run_id],
            [r for r in dbos if r[0] == c.run_id],
        )
        for c in waiting[:5]
    ]
    logs = Path(args[args.index("--logs") + 1])
    tail = (logs / "b.log").read_text()[-3000:]
    return f"{shown} (runs {runs}); survivor's log:\n{tail}"


def finished_on(client: DurableClient) -> str | None:
    output = ((client.final or {}).get("data") or {}).get("output") or {}
    return output.get("finished_on")


def check_no_repeated_side_effect(tools: ToolServer, clients: list[DurableClient]) -> None:
    # every run, also one whose client never learned its id (its replica died before the
    # first event reached it: the client asked again, a new run)
    assert {run for _, run in tools.by_run} >= {c.run_id for c in clients}
    for (path, run), requests in tools.by_run.items():
        if path in UNSAFE:
            assert requests == 1, (path, run, requests)  # never repeated
    # each idempotent call applied once per key, however often it was sent
    assert tools.applied["/reserve"] == len(set(tools.keys["/reserve"]))


@pytest.mark.parametrize("transport", ["websocket", "sse"])
async def test_sigkill_one_durable_replica_mid_run_its_runs_complete_on_the_other(
    transport: str,
    cluster_args: list[str],
    redis_server: RedisServer,
    haproxy_binary: str,
) -> None:
    message = MESSAGES[transport]
    with ToolServer(delay=TOOL_LATENCY) as tools:
        a, b, balancer = start_cluster(cluster_args, redis_server.url, tools, haproxy_binary)
        with a, b, balancer() as lb:
            clients = [DurableClient(f"{transport}-user-{n}") for n in range(CLIENTS)]
            tasks, mid_run = drivers(transport, clients, lb.url)
            try:
                await asyncio.wait_for(mid_run.wait(), 30)
            except TimeoutError:
                raise AssertionError(f"not mid-run: {[c.seqs for c in clients[:5]]}") from None
            a.kill()  # SIGKILL mid-run
            killed_at = time.monotonic()
            ended_before = {c.user for c in clients if c.final is not None}
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), SETTLE)
            except TimeoutError:
                waiting = [c for c in clients if not c.final]
                found = await diagnose(cluster_args, waiting)
                raise AssertionError(f"{len(waiting)} unfinished: {found}") from None
            settled = time.monotonic() - killed_at

    assert all(c.final is not None for c in clients)  # 100 % end with a terminal event
    for c in clients:
        assert c.seqs == list(range(1, c.last + 1)), (c.user, c.seqs)  # none lost, none twice
    moved = [c for c in clients if c.reconnects]
    assert moved  # clients reconnected through the balancer with their last seq
    # the killed replica's runs still going when it died (a run whose first event never
    # reached the shared log counts as the dead replica's: the survivor is alive throughout)
    in_flight = [c for c in clients if c.started_on != "replica-b" and c.user not in ended_before]
    assert len(in_flight) >= CLIENTS // 5, len(in_flight)  # the SIGKILL came mid-run
    completed = [c for c in in_flight if real_answer(c, message)]
    assert len(completed) >= 0.99 * len(in_flight), [
        (c.user, (c.final or {}).get("data")) for c in in_flight if c not in completed
    ]
    resumed_on_b = [c for c in completed if finished_on(c) == "replica-b"]
    assert resumed_on_b  # DBOS continued them on the survivor
    # the survivor's own runs all end with their real answer
    assert all(real_answer(c, message) for c in clients if c.started_on == "replica-b")
    check_no_repeated_side_effect(tools, clients)
    latency = p99([x for c in moved for x in c.resume_latency])
    print(
        f"\n{transport}: {len(in_flight)} of the killed replica's runs in flight at the SIGKILL,"
        f" {len(completed)} completed with their real answer ({len(resumed_on_b)} finished by"
        f" DBOS on the survivor), {len(moved)} clients reconnected; drop -> next event p99"
        f" {latency * 1000:.0f} ms; all settled {settled:.1f} s after the SIGKILL"
    )
