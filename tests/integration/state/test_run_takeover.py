"""A sweep taking over a run on a real redis-server (fake clock, no load balancer): the run's
stream must end with exactly one final event, right after the last event any client got,
whoever writes it and whatever Redis answered meanwhile.

Reproduces issue 13's seq gap / missing final under load, deterministically:

* the sweeping replica's Redis read fails (breaker open for a moment): it must not guess the
  run's top from its own mirror (it knows none of the run) and append a final at seq 1 that
  Redis later refuses as "equal or smaller" while the ledger says interrupted;
* the owner is alive but its lease lapsed (a starved event loop): the sweeper's final takes
  seq k, and the owner's own event k must not be dropped silently (its clients saw k - 1,
  k + 1) nor its later events land after the final in the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from redis.asyncio import Redis

from netra_resilience.engine import (
    InMemoryRunLedger,
    RunEvents,
    RunLeases,
    RunRequest,
    Stored,
    wrap_engine,
)
from netra_resilience.integrations.fastapi import run_event_stream
from netra_resilience.integrations.redis import RedisEventLog, redis_breaker, redis_client
from netra_resilience.testing import FakeClock
from tests.servers import RedisServer

LEASE = 1.0


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[Redis]]:
    made = [redis_client(redis_server.url) for _ in range(2)]
    yield made
    for client in made:
        await client.aclose()


def replica(client: Redis, namespace: str, clock: FakeClock) -> RedisEventLog:
    return RedisEventLog(client, breaker=redis_breaker(client, clock=clock), prefix=namespace)


async def stream(client: Redis, namespace: str, run: str) -> list[tuple[int, str]]:
    """(seq, type) of every entry of the run's stream, as Redis holds it."""
    import json

    entries: Any = await client.xrange(namespace + run)
    return [(int(e[0].split(b"-")[0]), json.loads(e[1][b"e"])["type"]) for e in entries]


async def until_shared(log: RedisEventLog, run: str, seq: int) -> None:
    for _ in range(200):  # the owner's writer is off the run's path: wait for it (bounded)
        if await log.last_seq(run) >= seq:
            return
        await asyncio.sleep(0.005)  # real-sleep-ok: polling a real Redis stream
    raise AssertionError(f"{run}: seq {seq} never reached Redis")


async def collect(log: RedisEventLog, run: str, after: int) -> list[dict[str, Any]]:
    return [dict(e) async for e in log.follow(run, after)]


async def test_a_sweep_that_cannot_read_redis_ends_the_run_after_its_real_top(
    clients: list[Redis], namespace: str
) -> None:
    clock = FakeClock()
    log_a, log_b = (replica(c, namespace, clock) for c in clients)
    ledger = InMemoryRunLedger()
    a = RunLeases(ledger, log_a, owner="a", lease=LEASE, clock=clock)
    b = RunLeases(ledger, log_b, owner="b", lease=LEASE, clock=clock)

    async def agent(request: RunRequest, events: RunEvents) -> None:
        await events.thinking("one")
        await events.thinking("two")
        await asyncio.Event().wait()  # its replica dies with it mid-run

    engine_a = wrap_engine(agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="r"))
    await until_shared(log_a, "r", 3)
    await clock.advance(LEASE + 0.5)  # a was SIGKILLed: it writes nothing more, renews nothing
    await log_b.breaker.isolate()  # b cannot reach Redis during its sweep
    await b.tick()
    assert await stream(clients[0], namespace, "r") == [
        (1, "agent_started"),
        (2, "agent_thinking"),
        (3, "agent_thinking"),
    ]
    await log_b.breaker.close()  # Redis is reachable again: the next ticks end the run
    await b.tick()
    resumed = await asyncio.wait_for(collect(log_b, "r", 3), 5)
    assert [(e["seq"], e["type"]) for e in resumed] == [(4, "agent_completed")]
    assert resumed[0]["data"]["status"] == "interrupted"
    assert (await stream(clients[0], namespace, "r"))[-1] == (4, "agent_completed")
    assert (await ledger.get("r")).status == "interrupted"  # type: ignore[union-attr]
    assert await b.tick() == 0  # ended once
    run.cancel()  # (the test's own cleanup: a real SIGKILL leaves no task behind)
    await asyncio.gather(run, return_exceptions=True)


async def test_an_owner_whose_lease_lapsed_neither_skips_a_seq_nor_writes_past_the_final(
    clients: list[Redis], namespace: str
) -> None:
    clock = FakeClock()
    log_a, log_b = (replica(c, namespace, clock) for c in clients)
    ledger = InMemoryRunLedger()
    a = RunLeases(ledger, log_a, owner="a", lease=LEASE, clock=clock)
    b = RunLeases(ledger, log_b, owner="b", lease=LEASE, clock=clock)
    go_on = asyncio.Event()

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("one")
        await go_on.wait()  # meanwhile a's event loop is starved past its lease
        await events.thinking("two")
        await events.thinking("three")
        return "the answer nobody will get"

    engine_a = wrap_engine(agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="r"))
    await until_shared(log_a, "r", 2)
    on_a = asyncio.create_task(collect(log_a, "r", 0))  # a client connected to a
    await clock.advance(LEASE + 0.5)  # a did not renew in time
    assert await b.tick() == 1  # b takes the run over: a final at seq 3
    go_on.set()
    await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 5)
    got = await asyncio.wait_for(on_a, 5)
    seqs = [int(e["seq"]) for e in got]
    assert seqs == list(range(1, seqs[-1] + 1)), seqs  # no gap for the client on a
    assert got[-1]["type"] == "agent_completed"
    assert got[-1]["data"]["status"] == "interrupted"  # the log's one end, which b wrote
    shared = await stream(clients[0], namespace, "r")
    assert shared[-1] == (seqs[-1], "agent_completed")  # nothing after the final
    assert [t for _, t in shared].count("agent_completed") == 1
    resumed = await asyncio.wait_for(collect(log_b, "r", 2), 5)  # a client resuming on b
    assert resumed == got[2:]
    # a resume at (or past) the seq of a sweep's end cannot tell it from an event only a
    # dead replica kept there: it gets the end once more, right after its seq (SSE: then 204)
    for last in (seqs[-1], seqs[-1] + 1):
        again = await asyncio.wait_for(collect(log_b, "r", last), 5)
        assert [(e["seq"], e["type"]) for e in again] == [(last + 1, "agent_completed")]
    assert await sse_ids(log_b, "r", f"{seqs[-1] + 1}.end") == (204, [])
    assert again[0]["logged_seq"] == seqs[-1]  # where the end is in the log
    assert (await ledger.get("r")).status == "interrupted"  # type: ignore[union-attr]
    assert await log_a.append({**got[-1], "type": "agent_thinking", "seq": 9}) is Stored.ENDED


async def test_events_only_the_dead_replica_kept_still_get_an_end_after_them(
    clients: list[Redis], namespace: str
) -> None:
    """Replica a could not reach Redis (its breaker open under load) and died: its client
    holds seqs 1..3 that the shared log never got. Resuming on b is "try again", not
    "unknown", while the ledger has the run running; after b's sweep it gets the end."""
    from netra_resilience.engine import ReplayUnavailableError

    clock = FakeClock()
    log_a, log_b = (replica(c, namespace, clock) for c in clients)
    ledger = InMemoryRunLedger()
    a = RunLeases(ledger, log_a, owner="a", lease=LEASE, clock=clock)
    b = RunLeases(ledger, log_b, owner="b", lease=LEASE, clock=clock)
    await log_a.breaker.isolate()

    async def agent(request: RunRequest, events: RunEvents) -> None:
        await events.thinking("one")
        await events.thinking("two")
        await asyncio.Event().wait()

    engine_a = wrap_engine(agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="r"))
    on_a = a.log.follow("r", 0)
    got = [await anext(on_a) for _ in range(3)]
    assert [e["seq"] for e in got] == [1, 2, 3]  # from a's mirror only
    assert await stream(clients[0], namespace, "r") == []
    with pytest.raises(ReplayUnavailableError) as refused:
        await asyncio.wait_for(collect_from(b.log, "r", 3), 5)
    assert refused.value.reason == "unavailable"  # the ledger knows it: try again
    await clock.advance(LEASE + 0.5)  # a is dead
    assert await b.tick() == 1
    resumed = await asyncio.wait_for(collect_from(b.log, "r", 3), 5)
    assert [(e["seq"], e["type"]) for e in resumed] == [(4, "agent_completed")]
    assert resumed[0]["data"]["status"] == "interrupted"
    assert await stream(clients[0], namespace, "r") == [(1, "agent_completed")]
    # a client that got only seq 1 (agent_started, from a's mirror) holds another event at
    # the sweep's seq: it still gets the end, after its seq - over SSE too, then a 204
    resumed = await asyncio.wait_for(collect_from(b.log, "r", 1), 5)
    assert [(e["seq"], e["type"]) for e in resumed] == [(2, "agent_completed")]
    assert await sse_ids(b.log, "r", "1") == (200, ["2.end"])  # the end, after its seq
    assert await sse_ids(b.log, "r", "2.end") == (204, [])  # a browser's reconnect after it
    assert await sse_ids(b.log, "r", "3") == (200, ["4.end"])
    with pytest.raises(ReplayUnavailableError) as unknown:
        await asyncio.wait_for(collect_from(b.log, "never-accepted", 0), 5)
    assert unknown.value.reason == "unknown"
    await on_a.aclose()
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def collect_from(log: Any, run: str, after: int) -> list[dict[str, Any]]:
    return [dict(e) async for e in log.follow(run, after)]


async def test_a_final_event_only_its_replica_holds_leaves_the_run_to_the_sweep(
    clients: list[Redis], namespace: str
) -> None:
    """A run's final event that could only be kept locally (Redis unreachable from its
    replica at that moment) does not finish the run in the ledger: if the replica then dies
    (a), the sweep ends the run for the resuming client; if it lives (c), its write-back
    shares the final event, and only then is the run finished."""
    clock = FakeClock()
    log_a, log_b = (replica(c, namespace, clock) for c in clients)
    log_c = replica(clients[0], namespace, clock)
    ledger = InMemoryRunLedger()
    a, b, c = (
        RunLeases(ledger, log, owner=name, lease=LEASE, clock=clock)
        for log, name in ((log_a, "a"), (log_b, "b"), (log_c, "c"))
    )
    answer = asyncio.Event()

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("one")
        await answer.wait()
        return "answer"

    runs = []
    for leases, run_id in ((a, "dies"), (c, "lives")):
        engine = wrap_engine(agent, clock=clock, event_log=leases.log, layers=[leases.layer])
        runs.append(await engine.start(RunRequest("hi", run_id=run_id)))
    await until_shared(log_a, "dies", 2)
    await until_shared(log_c, "lives", 2)
    await log_a.breaker.isolate()  # neither can reach Redis when its run ends
    await log_c.breaker.isolate()
    answer.set()
    await asyncio.gather(*runs)  # each ended with its final event kept only locally
    for run_id in ("dies", "lives"):
        assert (await ledger.get(run_id)).status == "running"  # type: ignore[union-attr]
        assert (await stream(clients[0], namespace, run_id))[-1] == (2, "agent_thinking")
    await log_c.breaker.close()
    await c.tick()  # c lives: it writes its final event back, then finishes the run
    assert (await ledger.get("lives")).status == "ok"  # type: ignore[union-attr]
    assert (await stream(clients[0], namespace, "lives"))[-1] == (3, "agent_completed")
    await clock.advance(LEASE + 0.5)  # a died holding its run's final event
    assert await b.tick() == 1
    resumed = await asyncio.wait_for(collect(log_b, "dies", 2), 5)
    assert [(e["seq"], e["data"]["status"]) for e in resumed] == [(3, "interrupted")]
    assert (await ledger.get("dies")).status == "interrupted"  # type: ignore[union-attr]


async def sse_ids(log: Any, run: str, last_event_id: str) -> tuple[int, list[str]]:
    """GET the run's SSE stream with ``Last-Event-ID``: the status and the ids received."""
    app = FastAPI()

    @app.get("/events/{run_id}")
    async def events(run_id: str, request: Request) -> Response:
        return run_event_stream(request, log, run_id)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"Last-Event-ID": last_event_id}
        response = await client.get(f"/events/{run}", headers=headers)
    ids = [line[3:].strip() for line in response.text.splitlines() if line.startswith("id:")]
    return response.status_code, ids
