"""Event delivery costs a task and a timer only for a send that has to wait."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from typing import Any

import pytest

from netra_resilience.engine import (
    EventOptions,
    Hook,
    HookQueue,
    ResilientEngine,
    RunEvents,
    RunRequest,
    RunStatus,
    wrap_engine,
)
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder, simple_engine


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_a_sink_that_never_waits_costs_no_task_and_no_timer(clock: FakeClock) -> None:
    tasks_seen: list[int] = []

    async def engine(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("one")
        tasks_seen.append(len(_other_tasks()))
        return "ok"

    sink = Recorder()  # an in-memory async sink
    result = await ResilientEngine(engine, clock=clock).run(RunRequest("q"), sink)

    assert sink.types() == ["agent_started", "agent_thinking", "agent_completed"]
    assert tasks_seen == [0]  # no sender task while the run went on
    assert clock.timeouts == []  # no per-send timeout, no flush timeout
    assert result.events.sent == 3 and result.events.emitted == 3


async def test_a_plain_function_is_a_sink(clock: FakeClock) -> None:
    received: list[dict[str, Any]] = []
    result = await ResilientEngine(simple_engine, clock=clock).run(
        RunRequest("q"), received.append
    )
    assert [e["type"] for e in received] == ["agent_started", "agent_thinking", "agent_completed"]
    assert [e["seq"] for e in received] == [1, 2, 3]
    assert result.events.sent == 3 and clock.timeouts == []


async def test_a_failing_plain_function_sink_is_retried_once_then_dead(clock: FakeClock) -> None:
    calls: list[str] = []

    def sink(event: dict[str, Any]) -> None:
        calls.append(event["type"])
        raise ConnectionError("gone")

    result = await ResilientEngine(simple_engine, clock=clock).run(RunRequest("q"), sink)
    # agent_started twice (then dead), agent_thinking skipped, the final one tried once.
    assert calls == ["agent_started", "agent_started", "agent_completed"]
    stats = result.events
    assert (stats.sent, stats.retried, stats.failed, stats.undelivered) == (0, 1, 2, 1)
    assert result.status is RunStatus.OK


class Gate:
    """An async sink that waits whenever its gate is closed, else returns at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.events: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        if not self.open.is_set():
            await self.open.wait()
        self.events.append(event)


async def test_a_send_that_waits_moves_to_a_task_and_later_events_keep_their_order(
    clock: FakeClock,
) -> None:
    sink = Gate()
    counts: list[int] = []

    async def engine(request: RunRequest, events: RunEvents) -> str:
        sink.open.clear()
        await events.thinking("waits")  # this send waits: a sender task finishes it
        counts.append(len(_other_tasks()))
        await events.thinking("queued 1")
        await events.thinking("queued 2")
        sink.open.set()
        await clock.settle()  # the sender task sends what queued, then ends
        counts.append(len(_other_tasks()))
        await events.thinking("at once again")
        counts.append(len(_other_tasks()))
        return "ok"

    result = await ResilientEngine(engine, clock=clock).run(RunRequest("q"), sink)

    texts = [e["data"].get("text") for e in sink.events if e["type"] == "agent_thinking"]
    assert texts == ["waits", "queued 1", "queued 2", "at once again"]
    assert [e["seq"] for e in sink.events] == [1, 2, 3, 4, 5, 6]
    assert counts == [1, 0, 0]
    assert clock.timeouts == [2.0]  # the one send that waited was bounded by send_timeout
    assert result.events.sent == 6


async def test_a_waiting_send_still_times_out_and_the_run_goes_on(clock: FakeClock) -> None:
    sink = Gate()
    sink.open.clear()  # every send hangs
    options = EventOptions(send_timeout=1.0, flush_timeout=10.0)
    stack = ResilientEngine(simple_engine, clock=clock, events=options)
    result = await advance_until_done(clock, stack.run(RunRequest("q"), sink))
    assert result.output == "answer to q"
    assert (result.events.sent, result.events.failed) == (0, 2)
    assert clock.pending == 0 and not _other_tasks()


request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="-")


async def test_a_sink_keeps_its_context_across_the_wait(clock: FakeClock) -> None:
    """The first step runs on the run's task, the rest on the sender: one context for both."""
    gate = asyncio.Event()
    seen: list[str] = []

    async def sink(event: dict[str, Any]) -> None:
        token = request_var.set(event["type"])
        if event["type"] == "agent_started":
            await gate.wait()
        seen.append(request_var.get())
        request_var.reset(token)  # raises if the rest ran in another context

    async def engine(request: RunRequest, events: RunEvents) -> str:
        gate.set()
        return "ok"

    result = await ResilientEngine(engine, clock=clock).run(RunRequest("q"), sink)
    assert seen == ["agent_started", "agent_completed"]
    assert result.events.sent == 2 and result.events.failed == 0
    assert request_var.get() == "-"  # the sink's set never leaked into the run


async def test_an_event_no_one_listens_to_is_numbered_but_not_built(clock: FakeClock) -> None:
    built: list[dict[str, Any] | None] = []

    async def engine(request: RunRequest, events: RunEvents) -> str:
        built.append(events.emit_nowait("agent_thinking", {"text": "x"}))
        return "ok"

    result = await ResilientEngine(engine, clock=clock).run(RunRequest("q"))  # no sink
    assert built == [None]
    assert result.events.emitted == 3 and result.events.sent == 0

    seen: list[str] = []

    async def hook(event: Mapping[str, Any]) -> None:
        seen.append(f"{event['seq']}:{event['type']}")

    stack = wrap_engine(
        simple_engine, hooks=[Hook("audit", hook, background=False)], clock=clock
    )
    await stack.run(RunRequest("q"))  # a hook listens: events are built for it
    assert seen == ["1:agent_started", "2:agent_thinking", "3:agent_completed"]


async def test_hook_jobs_that_never_wait_run_on_one_worker(clock: FakeClock) -> None:
    ran: list[tuple[int, asyncio.Task[Any] | None]] = []

    async def job(n: int) -> None:
        ran.append((n, asyncio.current_task()))

    queue = HookQueue(workers=4, clock=clock)
    queue.offer(job, 0)
    await clock.settle()  # the workers start; all idle again
    ran.clear()
    for n in range(5):
        queue.offer(job, n)
    await clock.settle()
    assert [n for n, _ in ran] == [0, 1, 2, 3, 4]
    assert len({task for _, task in ran}) == 1  # one worker woke and ran them all
    await queue.aclose()
    assert queue.processed == 6


async def test_a_hook_job_that_waits_hands_the_rest_of_the_queue_to_another_worker(
    clock: FakeClock,
) -> None:
    release = asyncio.Event()
    done: list[int] = []

    async def job(n: int) -> None:
        if n == 0:
            await release.wait()
        done.append(n)

    queue = HookQueue(workers=2, clock=clock)
    queue.offer(job, 99)
    await clock.settle()  # both workers idle
    for n in range(3):
        queue.offer(job, n)
    await clock.settle()
    assert done == [99, 1, 2]  # job 0 waits; the others did not wait behind it
    release.set()
    await queue.aclose()
    assert done == [99, 1, 2, 0] and queue.processed == 4


@pytest.mark.parametrize("waits", [False, True])
async def test_cancelled_run_final_event_reaches_the_sink_either_way(
    clock: FakeClock, waits: bool
) -> None:
    started = asyncio.Event()
    sink = Gate()

    async def engine(request: RunRequest, events: RunEvents) -> str:
        started.set()
        await clock.sleep(50.0)
        return "never"

    stack = ResilientEngine(engine, clock=clock)
    run = asyncio.ensure_future(stack.run(RunRequest("q"), sink))
    await started.wait()
    if waits:
        sink.open.clear()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    sink.open.set()
    await stack.aclose()
    assert [e["type"] for e in sink.events] == ["agent_started", "agent_completed"]
    assert sink.events[-1]["data"]["cancelled"] is True
    assert not _other_tasks() and clock.pending == 0
