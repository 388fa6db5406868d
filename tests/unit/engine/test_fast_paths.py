"""The engine's common paths taken without the general machinery, and what they keep:
hooks made inline while their breaker is closed, a full hook queue, events sharing one
degradation snapshot, observers awaited only for the event types they asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.context import ResilienceContext
from netra_resilience.engine import (
    EventOptions,
    Hook,
    HooksLayer,
    RunEvents,
    RunRequest,
    RunStatus,
    wrap_engine,
)
from netra_resilience.engine._run import EventDelivery
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder, simple_engine

BREAKER = CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=3, break_duration=30.0)


async def test_a_hook_done_at_once_is_counted_by_its_breaker(clock: FakeClock) -> None:
    seen: list[str] = []

    async def analytics(event: Mapping[str, Any]) -> None:
        seen.append(event["type"])

    stack = wrap_engine(
        simple_engine,
        hooks=[
            Hook("analytics", analytics),
            Hook("audit", analytics, background=False, events={"agent_completed"}),
        ],
        clock=clock,
    )
    result = await stack.run(RunRequest("q"), Recorder())
    await clock.settle()  # the hook queue's worker runs the background calls
    layer = stack.layer(HooksLayer)
    assert result.status is RunStatus.OK
    assert sorted(seen) == sorted(
        ["agent_started", "agent_thinking", "agent_completed", "agent_completed"]
    )
    assert layer.breaker("analytics").health.throughput == 3  # one success per call
    assert layer.breaker("audit").health.throughput == 1
    await stack.aclose()


async def test_a_half_open_hook_is_probed_through_its_pipeline(clock: FakeClock) -> None:
    failing = True
    calls = 0

    async def audit(event: Mapping[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if failing:
            raise ConnectionError("refused")

    stack = wrap_engine(
        simple_engine,
        hooks=[Hook("audit", audit, background=False, events={"agent_completed"}, breaker=BREAKER)],
        clock=clock,
    )
    breaker = stack.layer(HooksLayer).breaker("audit")
    for _ in range(3):
        await stack.run(RunRequest("q"))
    assert breaker.state is CircuitState.OPEN and calls == 3
    skipped = await stack.run(RunRequest("q"))
    assert calls == 3 and skipped.degradation == {"audit": "skipped"}
    await clock.advance(30.0)
    failing = False
    probed = await stack.run(RunRequest("q"))
    assert calls == 4 and probed.status is RunStatus.OK
    assert breaker.closed  # the probe succeeded
    await stack.aclose()


async def test_a_full_hook_queue_drops_counts_and_marks_and_never_blocks_the_run(
    clock: FakeClock,
) -> None:
    release = asyncio.Event()

    async def analytics(event: Mapping[str, Any]) -> None:
        await release.wait()  # every call waits: the queue fills

    async def chatty(request: RunRequest, events: RunEvents) -> str:
        for n in range(6):
            await events.thinking(f"step {n}")
        return "ok"

    stack = wrap_engine(
        chatty, hooks=[Hook("analytics", analytics, timeout=60.0)], clock=clock, hook_queue_size=2
    )
    sink = Recorder()
    start = clock.monotonic()
    result = await stack.run(RunRequest("q"), sink)
    queue = stack.layer(HooksLayer).queue
    assert clock.monotonic() == start and result.output == "ok"
    # 9 events (started, 6 thinking, the degraded notice, completed) before a worker ran
    assert queue.dropped == 7 and len(queue) == 2  # bounded: the oldest went first
    assert result.degradation == {"analytics": "skipped"}
    assert result.status is RunStatus.DEGRADED
    notices = [e["data"] for e in sink.events if e["type"] == "agent_degraded"]
    assert notices == [{"dependency": "analytics", "reason": "skipped"}]
    release.set()
    await advance_until_done(clock, stack.aclose())
    assert queue.abandoned == 0


async def test_events_share_a_degradation_snapshot_until_it_changes(clock: FakeClock) -> None:
    async def engine(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("one")
        await events.thinking("two")
        events.degradation.mark("search", "timeout")
        await events.thinking("three")
        events.degradation.clear("search")
        await events.thinking("four")
        return "ok"

    sink = Recorder()
    await wrap_engine(engine, clock=clock).run(RunRequest("q"), sink)
    by_text = {e["data"].get("text"): e for e in sink.events if e["type"] == "agent_thinking"}
    assert by_text["one"]["degradation"] is by_text["two"]["degradation"]
    assert by_text["two"]["degradation"] == {} and not by_text["two"]["degraded"]
    assert by_text["three"]["degradation"] == {"search": "timeout"} and by_text["three"]["degraded"]
    assert by_text["four"]["degradation"] == {} and not by_text["four"]["degraded"]


class _Watcher:
    def __init__(self) -> None:
        self.notified: list[str] = []
        self.observed: list[str] = []

    def notify(self, event: Mapping[str, Any]) -> None:
        self.notified.append(event["type"])

    async def observe(self, event: Mapping[str, Any]) -> None:
        self.observed.append(event["type"])


async def test_an_observer_is_awaited_only_for_the_types_it_observes(clock: FakeClock) -> None:
    context = ResilienceContext("run", run_id="r")
    events = RunEvents(context, EventDelivery(None, clock, EventOptions()), clock)
    some, every, none = _Watcher(), _Watcher(), _Watcher()
    events.add_observer(some, observes={"tool_completed"})
    events.add_observer(every)
    events.add_observer(none, observes=())
    assert events.observes("agent_thinking") and events.observes("tool_completed")
    await events.thinking("x")
    await events("tool_completed", tool="t")
    assert some.notified == every.notified == none.notified == ["agent_thinking", "tool_completed"]
    assert some.observed == ["tool_completed"]
    assert every.observed == ["agent_thinking", "tool_completed"]
    assert none.observed == []
