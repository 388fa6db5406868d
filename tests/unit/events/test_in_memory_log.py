"""InMemoryEventLog: exactly-once in-order resume, bounds, TTL, 1 000 runs with random drops."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from netra_resilience.engine import EventLog, InMemoryEventLog, ReplayUnavailableError, Stored
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.testing import FakeClock


def ev(run: str, seq: int, kind: str = "agent_thinking") -> dict[str, Any]:
    return {"type": kind, "run_id": run, "seq": seq, "data": {}}


def test_events_after_returns_missed_events_once_in_order(clock: FakeClock) -> None:
    buf = InMemoryEventLog(clock=clock)
    for seq in range(1, 6):
        assert buf.put(ev("r", seq))
    assert not buf.put(ev("r", 3))  # duplicate ignored
    assert [e["seq"] for e in buf.after("r", 2)] == [3, 4, 5]
    assert buf.after("r", 5) == []


def test_overflow_is_reported_not_silently_skipped(clock: FakeClock) -> None:
    buf = InMemoryEventLog(clock=clock, max_events_per_run=3)
    for seq in range(1, 7):
        buf.put(ev("r", seq))
    assert [e["seq"] for e in buf.after("r", 3)] == [4, 5, 6]
    with pytest.raises(ReplayUnavailableError):
        buf.after("r", 1)


async def test_ttl_expiry_on_the_injected_clock(clock: FakeClock) -> None:
    buf = InMemoryEventLog(clock=clock, ttl=60.0)
    buf.put(ev("r", 1))
    await clock.advance(59.0)
    buf.put(ev("r", 2))  # activity extends the TTL
    await clock.advance(59.0)
    assert len(buf.after("r", 0)) == 2
    await clock.advance(1.0)
    assert buf.purge() == 1
    with pytest.raises(ReplayUnavailableError):
        buf.after("r", 0)


def test_max_runs_bound_drops_least_recent(clock: FakeClock) -> None:
    buf = InMemoryEventLog(clock=clock, max_runs=2)
    for run in ("a", "b", "c"):
        buf.put(ev(run, 1))
    assert len(buf) == 2
    with pytest.raises(ReplayUnavailableError):
        buf.after("a", 0)


def test_invalid_bounds_fail_at_construction_naming_the_field() -> None:
    with pytest.raises(InvalidOptionsError, match="max_events_per_run"):
        InMemoryEventLog(max_events_per_run=0)
    with pytest.raises(InvalidOptionsError, match="ttl"):
        InMemoryEventLog(ttl=0)


async def test_protocol_methods_report_stored_duplicate_and_last_seq(clock: FakeClock) -> None:
    log = InMemoryEventLog(clock=clock)
    assert isinstance(log, EventLog)
    assert await log.append(ev("r", 1)) is Stored.STORED
    assert await log.append(ev("r", 1)) is Stored.DUPLICATE
    assert await log.last_seq("r") == 1
    assert await log.last_seq("unknown") == 0
    assert [e["seq"] for e in await log.read("r", 0)] == [1]


async def test_follow_replays_then_streams_live_until_final(clock: FakeClock) -> None:
    buf = InMemoryEventLog(clock=clock)
    buf.put(ev("r", 1, "agent_started"))
    buf.put(ev("r", 2))
    got: list[int] = []

    async def consume() -> None:
        got.extend([event["seq"] async for event in buf.follow("r", 1)])

    task = asyncio.create_task(consume())
    await clock.settle()
    buf.put(ev("r", 3))
    buf.put(ev("r", 4, "agent_completed"))
    await asyncio.wait_for(task, 5)
    assert got == [2, 3, 4]


async def test_thousand_runs_with_random_disconnects_lose_nothing(clock: FakeClock) -> None:
    rnd = random.Random(1234)
    buf = InMemoryEventLog(clock=clock, max_runs=2000)
    runs = [f"run-{i}" for i in range(1000)]
    lengths = {run: rnd.randint(3, 25) for run in runs}
    received: dict[str, list[int]] = {run: [] for run in runs}
    reconnects = 0

    async def produce(run: str) -> None:
        n = lengths[run]
        for seq in range(1, n + 1):
            buf.put(ev(run, seq, "agent_completed" if seq == n else "agent_thinking"))
            if rnd.random() < 0.5:
                await asyncio.sleep(0)  # interleave with consumers (a yield, not a wait)

    async def consume(run: str) -> None:
        nonlocal reconnects
        last = 0
        while True:
            stream = buf.follow(run, last)
            dropped = False
            async for event in stream:
                if rnd.random() < 0.15:  # connection drops: this event never reached the client
                    dropped = True
                    break
                received[run].append(event["seq"])
                last = event["seq"]
                if event["type"] == "agent_completed":
                    return
            await stream.aclose()
            if not dropped:
                return
            reconnects += 1

    # producers start first so each run exists when its client connects
    await asyncio.gather(*(produce(r) for r in runs), *(consume(r) for r in runs))
    assert reconnects > 500
    for run in runs:
        assert received[run] == list(range(1, lengths[run] + 1))


async def test_follower_of_a_run_evicted_by_max_runs_is_woken_not_left_hanging(
    clock: FakeClock,
) -> None:
    buf = InMemoryEventLog(clock=clock, max_runs=1)
    buf.put(ev("a", 1))

    async def follow() -> list[int]:
        return [event["seq"] async for event in buf.follow("a", 1)]

    task = asyncio.create_task(follow())
    await clock.settle()
    buf.put(ev("b", 1))  # run "a" is evicted to stay within max_runs
    await clock.settle()
    assert task.done()
    with pytest.raises(ReplayUnavailableError):
        task.result()
