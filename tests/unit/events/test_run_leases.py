"""RunLeases on the fake clock: a replica that stops renewing loses its runs to another
replica's sweep, which ends each with ``agent_completed`` ``status: interrupted`` in the event
log (exactly once, even with two sweepers); a live replica keeps its runs; a ledger outage
never fails a run."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from netra_resilience.engine import (
    InMemoryEventLog,
    InMemoryRunLedger,
    LedgerEntry,
    RunEvents,
    RunLeases,
    RunRequest,
    wrap_engine,
)
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.testing import FakeClock


async def stuck_agent(request: RunRequest, events: RunEvents) -> None:
    await events.thinking("working")
    await asyncio.Event().wait()  # its replica "dies" with it mid-run


async def test_dead_replicas_run_ends_interrupted_for_the_waiting_client(
    clock: FakeClock,
) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)
    a = RunLeases(ledger, log, owner="a", lease=10, clock=clock)
    b = RunLeases(ledger, log, owner="b", lease=10, clock=clock)
    engine_a = wrap_engine(stuck_agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="r1"))
    await clock.settle()
    assert (await ledger.get("r1")) == LedgerEntry("r1", "a", "running", a._wall() + 10)
    follower = asyncio.create_task(_collect(log, "r1", 0))
    await clock.settle()
    assert await b.tick() == 0  # the lease is still good
    await clock.advance(10.5)  # a never renews again (killed)
    assert await b.tick() == 1
    events = await asyncio.wait_for(follower, 1)
    assert [e["seq"] for e in events] == [1, 2, 3]
    final = events[-1]
    assert final["type"] == "agent_completed" and final["data"]["status"] == "interrupted"
    assert final["data"]["notice"]
    assert (await ledger.get("r1")).status == "interrupted"  # type: ignore[union-attr]
    assert await b.tick() == 0  # swept once
    run.cancel()


async def _collect(log: InMemoryEventLog, run: str, after: int) -> list[dict[str, Any]]:
    return [dict(e) async for e in log.follow(run, after)]


async def test_a_live_replica_keeps_its_runs_past_the_first_lease(clock: FakeClock) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)
    a = RunLeases(ledger, log, owner="a", lease=10, clock=clock)
    b = RunLeases(ledger, log, owner="b", lease=10, clock=clock)
    engine_a = wrap_engine(stuck_agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="r2"))
    for _ in range(6):  # 30 s: three leases, renewed every lease / 3
        await clock.advance(a.lease / 3)
        await a.tick()
        assert await b.tick() == 0
    assert (await ledger.get("r2")).owner == "a"  # type: ignore[union-attr]
    assert (await log.read("r2", 0))[-1]["type"] == "agent_thinking"
    await engine_a.aclose()  # a shuts down: the run ends cancelled, not interrupted
    assert run.cancelled()
    assert (await ledger.get("r2")).status == "cancelled"  # type: ignore[union-attr]
    assert (await log.read("r2", 0))[-1]["data"]["cancelled"] is True


async def test_two_sweepers_append_one_interrupted_event(clock: FakeClock) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)
    a = RunLeases(ledger, log, owner="a", lease=5, clock=clock)
    engine_a = wrap_engine(stuck_agent, clock=clock, event_log=a.log, layers=[a.layer])
    runs = [await engine_a.start(RunRequest("hi", run_id=f"r{n}")) for n in range(20)]
    await clock.advance(6)
    b = RunLeases(ledger, log, owner="b", lease=5, clock=clock)
    c = RunLeases(ledger, log, owner="c", lease=5, clock=clock)
    swept = await asyncio.gather(b.tick(), c.tick())
    assert sum(swept) == 20
    for n in range(20):
        events = await log.read(f"r{n}", 0)
        finals = [e for e in events if e["type"] == "agent_completed"]
        assert len(finals) == 1 and finals[0]["seq"] == 3
    for run in runs:
        run.cancel()


async def test_a_run_that_finished_unrecorded_gets_no_second_final_event(
    clock: FakeClock,
) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)

    class ForgetfulLedger(InMemoryRunLedger):
        async def finish(self, run_id: str, owner: str, status: str) -> bool:
            raise ConnectionError("the database went away")

    forgetful = ForgetfulLedger()
    a = RunLeases(forgetful, log, owner="a", lease=5, clock=clock)

    async def quick(request: RunRequest, events: RunEvents) -> str:
        return "done"

    result = await wrap_engine(quick, clock=clock, event_log=a.log, layers=[a.layer]).run(
        RunRequest("hi", run_id="r9")
    )
    assert result.output == "done"  # the ledger's failure is not the run's
    await clock.advance(6)
    b = RunLeases(forgetful, log, owner="b", lease=5, clock=clock)
    assert await b.tick() == 0
    assert [e["type"] for e in await log.read("r9", 0)][-1] == "agent_completed"
    assert len(await log.read("r9", 0)) == 2
    del ledger


class DownLedger(InMemoryRunLedger):
    async def accept(self, run_id: str, owner: str, lease_until: float) -> None:
        await asyncio.Event().wait()  # hangs: bounded by the leases' call timeout

    async def expired(self, now: float, limit: int) -> Sequence[LedgerEntry]:
        raise ConnectionError("down")


async def test_a_hanging_ledger_delays_a_run_by_its_accept_timeout_only(
    clock: FakeClock,
) -> None:
    log = InMemoryEventLog(clock=clock)
    a = RunLeases(DownLedger(), log, owner="a", lease=6, clock=clock)

    async def quick(request: RunRequest, events: RunEvents) -> str:
        return "done"

    stack = wrap_engine(quick, clock=clock, event_log=a.log, layers=[a.layer])
    begin = clock.monotonic()
    task = asyncio.create_task(stack.run(RunRequest("hi")))
    while not task.done():
        await clock.advance(0.5)
    assert task.result().output == "done"
    assert clock.monotonic() - begin <= a.accept_timeout + 0.5
    with pytest.raises(ConnectionError):
        await a.tick()  # run() logs this and tries again next tick


class FlakyAcceptLedger(InMemoryRunLedger):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    async def accept(self, run_id: str, owner: str, lease_until: float) -> None:
        if self.fail:
            raise ConnectionError("pool busy")
        await super().accept(run_id, owner, lease_until)


async def test_a_run_whose_accept_failed_is_recorded_by_the_next_tick(clock: FakeClock) -> None:
    ledger, log = FlakyAcceptLedger(), InMemoryEventLog(clock=clock)
    a = RunLeases(ledger, log, owner="a", lease=3, clock=clock)
    engine_a = wrap_engine(stuck_agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="late"))
    await clock.settle()
    assert await ledger.get("late") is None
    ledger.fail = False
    await a.tick()
    assert (await ledger.get("late")).owner == "a"  # type: ignore[union-attr]
    await clock.advance(4)  # a dies: b's sweep now sees the run
    b = RunLeases(ledger, log, owner="b", lease=3, clock=clock)
    assert await b.tick() == 1
    run.cancel()


def test_invalid_options_name_the_field() -> None:
    log = InMemoryEventLog()
    with pytest.raises(InvalidOptionsError, match="ledger"):
        RunLeases(object(), log)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match="event_log"):
        RunLeases(InMemoryRunLedger(), object())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match="lease"):
        RunLeases(InMemoryRunLedger(), log, lease=0)
    with pytest.raises(InvalidOptionsError, match="owner"):
        RunLeases(InMemoryRunLedger(), log, owner="")
