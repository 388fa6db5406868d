"""RunLeases with durable execution (``recover=``): a dead replica's run that the durable
engine resumes is not interrupted, and the replica executing it next adopts it in the
ledger; a run it cannot resume (or a failing hook) still ends ``interrupted``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from netra_resilience.engine import (
    InMemoryEventLog,
    InMemoryRunLedger,
    LedgerEntry,
    RunEvents,
    RunLeases,
    RunRequest,
    ToolCall,
    ToolResult,
    wrap_engine,
)
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.testing import FakeClock


async def stuck_agent(request: RunRequest, events: RunEvents) -> None:
    await events.thinking("working")
    await asyncio.Event().wait()  # its replica "dies" with it mid-run


class Resumer:
    """A durable engine's recovery hook: records what it was offered."""

    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.offered: list[LedgerEntry] = []

    async def __call__(self, entry: LedgerEntry) -> bool:
        self.offered.append(entry)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class DurableSteps:
    """Marks the run durable, continuing the log after ``last_seq``; runs every step
    directly (what matters here is the ledger)."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq

    @property
    def durable(self) -> bool:
        return True

    async def begin(self, events: RunEvents) -> None:
        events.replay_through(self.last_seq)

    async def call(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        return await fn(*args, **kwargs)

    async def tool(
        self, call: ToolCall, execute: Callable[[], Awaitable[ToolResult]]
    ) -> ToolResult:
        return await execute()


async def _dead_replicas_run(
    clock: FakeClock, ledger: InMemoryRunLedger, log: InMemoryEventLog
) -> asyncio.Task[Any]:
    a = RunLeases(ledger, log, owner="a", lease=5, clock=clock)
    engine_a = wrap_engine(stuck_agent, clock=clock, event_log=a.log, layers=[a.layer])
    run = await engine_a.start(RunRequest("hi", run_id="r1"))
    await clock.settle()
    await clock.advance(6)  # a stops renewing (killed)
    return run


async def test_a_resumed_run_is_not_interrupted_and_its_executor_adopts_it(
    clock: FakeClock,
) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)
    dead = await _dead_replicas_run(clock, ledger, log)
    resumer = Resumer(True)
    b = RunLeases(ledger, log, owner="b", lease=5, clock=clock, recover=resumer)
    assert await b.tick() == 0  # nothing interrupted
    assert (b.resumed, b.interrupted) == (1, 0)
    assert [entry.owner for entry in resumer.offered] == ["a"]
    assert (await ledger.get("r1")).owner == "b"  # type: ignore[union-attr]  # b holds it meanwhile
    assert [e["type"] for e in await log.read("r1", 0)] == ["agent_started", "agent_thinking"]
    await clock.advance(2)
    assert await b.tick() == 0  # b renews it, offers it no second time
    assert len(resumer.offered) == 1
    # the durable engine executes the run on c: c owns it, and finishes it there
    c = RunLeases(ledger, log, owner="c", lease=5, clock=clock)

    async def recovered(request: RunRequest, events: RunEvents) -> str:
        assert (await ledger.get("r1")).owner == "c"  # type: ignore[union-attr]
        return "the real answer"

    engine_c = wrap_engine(recovered, clock=clock, event_log=c.log, layers=[c.layer])
    result = await engine_c.run(RunRequest("hi", run_id="r1"), steps=DurableSteps(2))
    assert result.output == "the real answer"
    entry = await ledger.get("r1")
    assert entry is not None and (entry.owner, entry.status) == ("c", "ok")
    final = (await log.read("r1", 2))[-1]
    assert (final["seq"], final["data"]["output"]) == (3, "the real answer")
    dead.cancel()


@pytest.mark.parametrize("answer", [False, ConnectionError("dbos down")])
async def test_a_run_the_durable_engine_cannot_resume_ends_interrupted(
    clock: FakeClock, answer: bool | Exception
) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)
    dead = await _dead_replicas_run(clock, ledger, log)
    b = RunLeases(ledger, log, owner="b", lease=5, clock=clock, recover=Resumer(answer))
    assert await b.tick() == 1
    assert (b.resumed, b.interrupted) == (0, 1)
    final = (await log.read("r1", 0))[-1]
    assert final["type"] == "agent_completed" and final["data"]["status"] == "interrupted"
    dead.cancel()


async def test_a_hanging_recovery_is_bounded(clock: FakeClock) -> None:
    ledger, log = InMemoryRunLedger(), InMemoryEventLog(clock=clock)
    dead = await _dead_replicas_run(clock, ledger, log)

    async def hangs(entry: LedgerEntry) -> bool:
        await asyncio.Event().wait()
        return True

    b = RunLeases(ledger, log, owner="b", lease=5, clock=clock, recover=hangs)
    sweep = asyncio.create_task(b.tick())
    while not sweep.done():
        await clock.advance(0.5)
    assert sweep.result() == 1  # interrupted after the call timeout, not stuck
    dead.cancel()


async def test_in_memory_ledger_adopts_whoever_held_the_run() -> None:
    ledger = InMemoryRunLedger()
    await ledger.adopt("r", "a", 10.0)
    assert await ledger.get("r") == LedgerEntry("r", "a", "running", 10.0)
    await ledger.adopt("r", "b", 20.0)
    assert await ledger.get("r") == LedgerEntry("r", "b", "running", 20.0)


def test_recover_must_be_callable() -> None:
    with pytest.raises(InvalidOptionsError, match="recover"):
        RunLeases(InMemoryRunLedger(), InMemoryEventLog(), recover=object())  # type: ignore[arg-type]
