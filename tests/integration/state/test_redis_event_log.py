"""RedisEventLog on a real redis-server: two replicas (own client, own mirror) share each
run's stream; a resume on the other replica gets every missed event exactly once, in order,
then the live ones; a Redis SIGKILL mid-run never fails the run nor starves the client
connected to the run's replica, and the events Redis missed are written back in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from netra_resilience.engine import (
    InMemoryEventLog,
    ReplayUnavailableError,
    RunEvents,
    RunRequest,
    Stored,
    wrap_engine,
)
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.redis import RedisEventLog, redis_breaker, redis_client
from netra_resilience.testing import FakeClock
from tests.servers import RedisServer
from tests.unit.engine.helpers import Recorder


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[Redis]]:
    made = [redis_client(redis_server.url) for _ in range(2)]
    yield made
    for client in made:
        await client.aclose()


def replica(client: Redis, namespace: str, clock: FakeClock | None = None) -> RedisEventLog:
    return RedisEventLog(client, breaker=redis_breaker(client, clock=clock), prefix=namespace)


def ev(run: str, seq: int, kind: str = "agent_thinking") -> dict[str, Any]:
    return {"type": kind, "run_id": run, "seq": seq, "data": {"n": seq}}


async def test_other_replica_resumes_a_live_run_exactly_once_in_order(
    clients: list[Redis], namespace: str
) -> None:
    a, b = (replica(c, namespace) for c in clients)
    gate = asyncio.Event()

    async def agent(request: RunRequest, events: RunEvents) -> str:
        for n in range(5):
            await events.thinking(f"first {n}")
        await gate.wait()  # the client reconnects elsewhere while the run goes on
        for n in range(5):
            await events.thinking(f"second {n}")
        return "done"

    stack = wrap_engine(agent, event_log=a)
    run = await stack.start(RunRequest("hi", run_id=f"{namespace}-run"))
    got: list[int] = []
    async for event in a.follow(f"{namespace}-run", 0):  # connected to the owner replica
        got.append(int(event["seq"]))
        if len(got) == 4:
            break  # the connection drops after seq 4
    for _ in range(100):  # the owner's writer is off the run's path: wait for it (bounded)
        if await b.last_seq(f"{namespace}-run") >= 6:
            break
        await asyncio.sleep(0.01)  # real-sleep-ok: polling a real Redis stream
    follower = asyncio.create_task(_collect(b, f"{namespace}-run", got[-1]))
    await asyncio.sleep(0.05)  # real-sleep-ok: the follower is blocked in XREAD
    gate.set()
    resumed = await asyncio.wait_for(follower, 10)
    result = await run
    assert [int(e["seq"]) for e in resumed] == list(range(5, 13))
    assert got + [int(e["seq"]) for e in resumed] == list(range(1, 13))
    assert resumed[-1]["type"] == "agent_completed"
    assert resumed[-1]["data"]["output"] == result.output == "done"
    assert await b.read(f"{namespace}-run", 10) == resumed[-2:]


async def _collect(log: RedisEventLog, run: str, after: int) -> list[dict[str, Any]]:
    return [dict(e) async for e in log.follow(run, after)]


async def test_redis_refuses_a_seq_twice_whoever_writes_it(
    clients: list[Redis], namespace: str
) -> None:
    a, b = (replica(c, namespace) for c in clients)
    assert await a.append(ev("r", 1, "agent_started")) is Stored.STORED
    assert await b.append(ev("r", 1, "agent_started")) is Stored.DUPLICATE
    assert await a.append(ev("r", 1, "agent_started")) is Stored.DUPLICATE
    assert await b.append(ev("r", 2)) is Stored.STORED
    assert await a.append(ev("r", 2)) is Stored.DUPLICATE
    assert [e["seq"] for e in await b.read("r", 0)] == [1, 2]
    assert await a.last_seq("r") == 2
    with pytest.raises(ReplayUnavailableError):
        await b.read("never-started", 0)


async def test_a_trimmed_stream_refuses_the_resume_instead_of_skipping(
    clients: list[Redis], namespace: str
) -> None:
    writer = RedisEventLog(
        clients[0],
        breaker=redis_breaker(clients[0]),
        prefix=namespace,
        max_events_per_run=1,  # MAXLEN ~ 1: Redis trims whole nodes (100 entries each)
    )
    for seq in range(1, 302):
        await writer.append(ev("long", seq))
    reader = replica(clients[1], namespace)
    with pytest.raises(ReplayUnavailableError, match="trimmed"):
        await reader.read("long", 0)
    assert [e["seq"] for e in await reader.read("long", 299)] == [300, 301]


async def test_redis_killed_mid_run_client_gets_every_event_and_redis_is_backfilled(
    fault_redis: RedisServer, namespace: str
) -> None:
    clock = FakeClock()
    client = redis_client(fault_redis.url)
    log = replica(client, namespace, clock)
    step = asyncio.Event()
    resumed = asyncio.Event()

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("before")
        await step.wait()
        for n in range(3):
            await events.thinking(f"during {n}")  # Redis is dead
        await resumed.wait()
        await events.thinking("after")  # Redis is back: the backlog goes first
        return "answer"

    stack = wrap_engine(agent, clock=clock, event_log=log)
    sink = Recorder()
    run = asyncio.create_task(stack.run(RunRequest("hi", run_id="killed"), sink))
    await clock.settle()
    for _ in range(100):
        if await log.last_seq("killed") >= 2:
            break
        await asyncio.sleep(0.01)  # real-sleep-ok: the writer's XADD on a real server
    fault_redis.kill()
    step.set()
    for _ in range(100):  # each failed XADD is a refused connection, answered at once
        if not log.breaker.available:
            break
        await asyncio.sleep(0.01)  # real-sleep-ok: refused connections on loopback
    assert not log.breaker.available
    fault_redis.start()
    await clock.advance(log.breaker.retry_interval)
    assert await log.breaker.probe_now()
    resumed.set()
    result = await asyncio.wait_for(run, 10)
    assert result.ok and result.output == "answer"
    assert result.degradation.get("events") == "local_only"
    types = sink.types()
    assert types.count("agent_thinking") == 5 and types[-1] == "agent_completed"
    assert [e["seq"] for e in sink.events] == list(range(1, len(types) + 1))
    # a fresh replica reads the restarted Redis: the events after the restart, written back
    # in order from the first one Redis lost (the run's start died with the first server)
    other = RedisEventLog(
        client, breaker=redis_breaker(client), prefix=namespace, local=InMemoryEventLog()
    )
    shared = await other.read("killed", await _first_seq(client, namespace, "killed") - 1)
    seqs = [int(e["seq"]) for e in shared]
    assert seqs == list(range(3, len(types) + 1))  # seq 1-2 died with the first server
    assert shared[-1]["type"] == "agent_completed"
    await client.aclose()


async def _first_seq(client: Redis, prefix: str, run: str) -> int:
    first: Any = await client.xrange(prefix + run, count=1)
    return int(first[0][0].decode().split("-")[0])


def test_invalid_options_name_the_field(clients: list[Redis]) -> None:
    with pytest.raises(InvalidOptionsError, match="breaker"):
        RedisEventLog(clients[0], breaker=object())  # type: ignore[arg-type]
    breaker = redis_breaker(clients[0])
    with pytest.raises(InvalidOptionsError, match="block"):
        RedisEventLog(clients[0], breaker=breaker, block=5.0)
    with pytest.raises(InvalidOptionsError, match="prefix"):
        RedisEventLog(clients[0], breaker=breaker, prefix="")


async def test_an_unexpected_write_error_leaves_no_gap_and_write_back_delivers_a_final(
    clients: list[Redis], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing with any error (not only a connection error) keeps the event for the
    write-back: a later event must not reach Redis ahead of it (a gap a resume would skip),
    and a final event nothing follows is pushed by ``write_back`` (RunLeases ticks it)."""
    from redis.exceptions import ResponseError

    owner, other = (replica(c, namespace) for c in clients)
    run = f"{namespace}-gap"
    assert await owner.append(ev(run, 1)) is Stored.STORED
    real_write = owner._write
    failures = iter([ResponseError("BUSY Redis is busy running a script")])

    async def flaky(run_id: str, events: Any) -> int:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real_write(run_id, events)

    monkeypatch.setattr(owner, "_write", flaky)
    assert await owner.append(ev(run, 2)) is Stored.LOCAL_ONLY  # kept, not lost
    assert await owner.append(ev(run, 3)) is Stored.STORED  # carries 2 along, in order
    assert [int(e["seq"]) for e in await other.read(run, 0)] == [1, 2, 3]

    failures = iter([ResponseError("BUSY"), ResponseError("BUSY")])
    final = ev(run, 4, "agent_completed")
    assert await owner.append(final) is Stored.LOCAL_ONLY
    assert await owner.write_back() == 0  # still failing: kept for the next tick
    assert await owner.write_back() == 1
    assert await owner.write_back() == 0  # nothing left
    assert [int(e["seq"]) for e in await other.read(run, 0)] == [1, 2, 3, 4]


async def test_a_follower_on_redis_goes_on_from_the_mirror_when_redis_dies(
    fault_redis: RedisServer, namespace: str
) -> None:
    """A client following, through Redis, a run this replica runs (its follow began before
    the mirror held the run from the client's seq on: here the mirror keeps only 3 events) is
    not cut off when Redis is SIGKILLed: from the seq it has, the mirror holds every event."""
    client = redis_client(fault_redis.url)
    log = RedisEventLog(
        client,
        breaker=redis_breaker(client),
        prefix=namespace,
        local=InMemoryEventLog(max_events_per_run=3),
    )
    run = f"{namespace}-mirror"
    for seq in range(1, 6):
        assert await log.append(ev(run, seq)) is Stored.STORED
    follow = log.follow(run, 0)  # the mirror holds 3..5 only: the follow reads Redis
    got = [int((await anext(follow))["seq"]) for _ in range(5)]
    fault_redis.kill()  # the follower's next XREAD fails
    rest = asyncio.create_task(_drain(follow))
    assert await log.append(ev(run, 6)) is Stored.LOCAL_ONLY
    assert await log.append(ev(run, 7, "agent_completed")) is Stored.LOCAL_ONLY
    got += await asyncio.wait_for(rest, 10)
    assert got == [1, 2, 3, 4, 5, 6, 7]
    # elsewhere (a replica whose mirror does not hold the run) the resume is refused, not hung
    other = RedisEventLog(client, breaker=redis_breaker(client), prefix=namespace)
    with pytest.raises(ReplayUnavailableError, match="unavailable"):
        await anext(other.follow(run, 5))
    await client.aclose()


async def _drain(events: AsyncIterator[Any]) -> list[int]:
    return [int(e["seq"]) async for e in events]
