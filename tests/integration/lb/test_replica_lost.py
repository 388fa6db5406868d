"""A replica SIGKILLed mid-run behind a real HAProxy: two replicas of the example backend
(separate processes) share a real redis-server (sessions, event log) and a real PostgreSQL
(sessions fallback, run ledger). 100 WebSocket clients start runs through the balancer; when
every client is mid-run, one replica is SIGKILLed. The clients it carried reconnect through
HAProxy with ``{"resume": run_id, "last_seq": n}`` and land on the survivor, whose sweep ends
the dead replica's runs with ``status: interrupted`` once their leases expire.

Shown: every client gets a terminal event; each client's seqs are exactly 1..final (none
lost, none duplicated); the survivor's runs end with their real answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.lb import BackendReplica, HAProxyServer
from tests.servers import PostgresServer, RedisServer

CLIENTS = 100


@dataclass
class Client:
    user: str
    run_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    final: dict[str, Any] | None = None
    reconnects: int = 0
    resume_latency: list[float] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0


async def drive(client: Client, url: str, mid_run: asyncio.Event, started: list[int]) -> None:
    dropped_at: float | None = None
    while client.final is None:
        try:
            async with connect(url, open_timeout=5) as ws:
                if client.run_id is None:
                    await ws.send(json.dumps({"user_id": client.user, "message": "tell me"}))
                else:
                    resume = {"resume": client.run_id, "last_seq": client.last}
                    await ws.send(json.dumps(resume))
                async for raw in ws:
                    event = json.loads(raw)
                    if event["type"] == "resume_failed":
                        assert event["reason"] == "unavailable", event
                        break  # the shared log is briefly unreachable: resume again
                    assert event["type"] != "error", event
                    if dropped_at is not None:
                        client.resume_latency.append(time.monotonic() - dropped_at)
                        dropped_at = None
                    client.run_id = event["run_id"]
                    client.seqs.append(int(event["seq"]))
                    if len(client.seqs) == 2:
                        started.append(1)
                        if len(started) == CLIENTS:
                            mid_run.set()
                    if event["type"] == "agent_completed":
                        client.final = event
                        return
        except (ConnectionClosed, InvalidStatus, OSError, TimeoutError):
            pass
        client.reconnects += 1
        dropped_at = dropped_at or time.monotonic()
        await asyncio.sleep(0.05)  # real-sleep-ok: a client's reconnect pause


def summary(clients: list[Client]) -> str:
    waiting = [c for c in clients if c.final is None]
    shown = [(c.user, c.seqs[-3:], c.reconnects) for c in waiting[:5]]
    return f"{len(waiting)} of {len(clients)} without a final event, e.g. {shown}"


async def test_sigkill_one_replica_mid_run_every_client_gets_a_terminal_event(
    shared_redis: RedisServer, shared_postgres: PostgresServer, haproxy_binary: str
) -> None:
    env = {
        "NETRA_REDIS_URL": shared_redis.url,
        "NETRA_DATABASE_URL": shared_postgres.url,
        "NETRA_SIMULATED_LATENCY": "0.25",  # each model/tool step: runs last ~1-2 s
        "NETRA_RUN_LEASE": "1.0",
        "NETRA_RETRY_DELAY": "0",
    }
    with (
        BackendReplica(env, name="a") as a,
        BackendReplica(env, name="b") as b,
        HAProxyServer([a.port, b.port], binary=haproxy_binary) as lb,
    ):
        url = lb.url.replace("http://", "ws://") + "/v1/runs/ws"
        clients = [Client(f"user-{n}") for n in range(CLIENTS)]
        mid_run = asyncio.Event()
        started: list[int] = []
        drivers = [asyncio.create_task(drive(c, url, mid_run, started)) for c in clients]
        try:
            await asyncio.wait_for(mid_run.wait(), 20)
        except TimeoutError:
            raise AssertionError(f"not all mid-run: {summary(clients)}") from None
        a.kill()  # SIGKILL mid-run
        killed_at = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*drivers), 30)
        except TimeoutError:
            raise AssertionError(f"unfinished: {summary(clients)}") from None
        settled = time.monotonic() - killed_at

    finals = [c.final for c in clients]
    assert all(f is not None for f in finals)  # 100 % end with a terminal event
    for c in clients:
        assert c.seqs == list(range(1, c.last + 1)), (c.user, c.seqs)  # none lost, none twice
    moved = [c for c in clients if c.reconnects]
    stayed = [c for c in clients if not c.reconnects]
    assert moved and stayed  # the balancer spread the clients over both replicas
    statuses = {c.final["data"]["status"] for c in stayed if c.final}
    assert statuses <= {"ok", "degraded"}
    interrupted = [c for c in moved if c.final and c.final["data"]["status"] == "interrupted"]
    latencies = sorted(x for c in moved for x in c.resume_latency)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    print(
        f"\n{len(moved)} clients moved, {len(stayed)} stayed; {len(interrupted)} runs ended "
        f"interrupted; resume latency p99 {p99 * 1000:.0f} ms; all settled {settled:.1f} s "
        "after the SIGKILL"
    )
