"""Event delivery: order, sequence numbers, degradation on every event, a final event always."""

from __future__ import annotations

import asyncio
import json

import pytest

from netra_resilience import InvalidOptionsError, current_degradation
from netra_resilience.context import current_context
from netra_resilience.engine import (
    EventOptions,
    ResilientEngine,
    RunEvents,
    RunRequest,
    RunStatus,
)
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import SECRET, Boom, Recorder, simple_engine


async def test_events_arrive_in_order_with_seq_and_final_ok(clock: FakeClock) -> None:
    sink = Recorder()
    stack = ResilientEngine(simple_engine, clock=clock)
    result = await stack.run(RunRequest("hi", user_id="u1", run_id="r1"), sink)

    assert result.status is RunStatus.OK and result.output == "answer to hi"
    assert sink.types() == ["agent_started", "agent_thinking", "agent_completed"]
    assert [e["seq"] for e in sink.events] == [1, 2, 3]
    assert {e["run_id"] for e in sink.events} == {"r1"}
    assert sink.events[1]["data"] == {"text": "planning"}
    assert sink.final()["data"] == {"status": "ok", "output": "answer to hi"}
    assert result.events.sent == 3 and result.events.dropped == 0
    json.dumps(sink.events)  # JSON-ready


async def test_engine_raises_user_gets_failed_without_secret_or_trace(clock: FakeClock) -> None:
    async def engine(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("calling the provider")
        raise Boom(f"provider said 401 for api_key={SECRET} at /srv/app/agent.py line 12")

    sink = Recorder()
    # A fixed run id: a random one may contain "401" itself, which is no leak.
    request = RunRequest("q", run_id="run-fixed")
    result = await ResilientEngine(engine, clock=clock).run(request, sink)

    assert result.status is RunStatus.FAILED and result.error_type == "Boom"
    assert isinstance(result.exception, Boom)  # kept for the server's own logs
    final = sink.final()["data"]
    assert final["status"] == "failed"
    assert final["error"] == {"type": "Boom", "message": "The agent could not complete this run."}
    wire = json.dumps(sink.events)
    for leak in (SECRET, "api_key", "Traceback", "agent.py", "401"):
        assert leak not in wire
    with pytest.raises(Boom):
        result.unwrap()


async def test_every_event_carries_degradation_and_a_notice_when_first_degraded(
    clock: FakeClock,
) -> None:
    async def engine(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("one")
        degradation = current_degradation()
        assert degradation is not None
        degradation.mark("llm", "timeout")
        await events.thinking("two")
        degradation.mark("llm", "stale_cache")  # same dependency: no second notice
        degradation.mark("search", "rate_limited")
        return "cached answer"

    sink = Recorder()
    result = await ResilientEngine(engine, clock=clock).run(RunRequest("q"), sink)

    assert sink.types() == [
        "agent_started",
        "agent_thinking",
        "agent_degraded",
        "agent_thinking",
        "agent_degraded",
        "agent_completed",
    ]
    assert [e["degraded"] for e in sink.events] == [False, False, True, True, True, True]
    assert sink.events[2]["data"] == {"dependency": "llm", "reason": "timeout"}
    assert sink.events[3]["degradation"] == {"llm": "timeout"}
    assert sink.events[4]["data"] == {"dependency": "search", "reason": "rate_limited"}
    assert sink.final()["degradation"] == {"llm": "stale_cache", "search": "rate_limited"}
    assert sink.final()["data"]["status"] == "degraded"
    assert result.status is RunStatus.DEGRADED and result.output == "cached answer"


async def test_slow_sink_never_blocks_the_agent(clock: FakeClock) -> None:
    stamps: list[float] = []

    async def engine(request: RunRequest, events: RunEvents) -> str:
        stamps.append(clock.monotonic())
        for i in range(5):
            await events.thinking(f"step {i}")
        stamps.append(clock.monotonic())
        return "done"

    sink = Recorder(clock, delay=1.0)  # one second per event, below send_timeout
    options = EventOptions(send_timeout=2.0, flush_timeout=30.0)
    stack = ResilientEngine(engine, clock=clock, events=options)
    result = await advance_until_done(clock, stack.run(RunRequest("q"), sink))

    assert stamps[0] == stamps[1]  # the engine spent no time waiting for the sink
    assert result.status is RunStatus.OK
    assert [e["seq"] for e in sink.events] == list(range(1, 8))


async def test_dead_sink_costs_the_run_a_bounded_time(clock: FakeClock) -> None:
    sink = Recorder(hang=True)
    options = EventOptions(send_timeout=1.0, flush_timeout=10.0)
    stack = ResilientEngine(simple_engine, clock=clock, events=options)
    start = clock.monotonic()
    result = await advance_until_done(clock, stack.run(RunRequest("q"), sink))

    # agent_started: two timed-out attempts (2 s); the sink is then dead: agent_thinking is
    # not tried, the final event gets one attempt (1 s).
    assert clock.monotonic() - start == pytest.approx(3.0)
    assert result.output == "answer to q"
    stats = result.events
    assert (stats.sent, stats.retried, stats.failed, stats.undelivered) == (0, 1, 2, 1)
    assert clock.pending == 0


async def test_flush_timeout_bounds_a_slow_sink(clock: FakeClock) -> None:
    sink = Recorder(clock, delay=1.5)
    options = EventOptions(send_timeout=2.0, flush_timeout=2.0)
    stack = ResilientEngine(simple_engine, clock=clock, events=options)
    start = clock.monotonic()
    result = await advance_until_done(clock, stack.run(RunRequest("q"), sink))
    assert clock.monotonic() - start == pytest.approx(2.0)
    assert result.events.sent == 1 and result.events.undelivered == 2
    assert clock.pending == 0


async def test_sink_is_retried_once(clock: FakeClock) -> None:
    sink = Recorder(fail_times=1)
    result = await ResilientEngine(simple_engine, clock=clock).run(RunRequest("q"), sink)
    assert sink.types() == ["agent_started", "agent_thinking", "agent_completed"]
    assert result.events.retried == 1 and result.events.failed == 0


async def test_sink_failing_twice_is_dead_but_final_event_is_still_tried(
    clock: FakeClock,
) -> None:
    sink = Recorder(fail_times=2)
    result = await ResilientEngine(simple_engine, clock=clock).run(RunRequest("q"), sink)
    assert sink.types() == ["agent_completed"]
    assert result.events.failed == 1 and result.events.undelivered == 1


async def test_full_queue_drops_oldest_intermediate_events_never_essentials(
    clock: FakeClock,
) -> None:
    async def engine(request: RunRequest, events: RunEvents) -> str:
        for i in range(10):
            await events.thinking(f"step {i}")
            await asyncio.sleep(0)  # real engines await their LLM between steps
        degradation = current_degradation()
        assert degradation is not None
        degradation.mark("llm", "fallback")
        return "ok"

    sink = Recorder(clock, delay=1.0)
    options = EventOptions(queue_size=3, send_timeout=5.0, flush_timeout=60.0)
    stack = ResilientEngine(engine, clock=clock, events=options)
    result = await advance_until_done(clock, stack.run(RunRequest("q"), sink))

    types = sink.types()
    assert types[0] == "agent_started" and types[-2:] == ["agent_degraded", "agent_completed"]
    seqs = [e["seq"] for e in sink.events]
    assert seqs == sorted(seqs) and seqs[-1] == 13  # gaps show what was dropped
    kept = [e["data"]["text"] for e in sink.events if e["type"] == "agent_thinking"]
    assert kept[-1] == "step 9"  # the newest progress survives
    assert types == ["agent_started", "agent_thinking", "agent_degraded", "agent_completed"]
    assert result.events.dropped == 9


async def test_engine_may_not_emit_the_stack_events(clock: FakeClock) -> None:
    async def engine(request: RunRequest, events: RunEvents) -> str:
        await events("agent_completed", status="ok")
        return "x"

    sink = Recorder()
    result = await ResilientEngine(engine, clock=clock).run(RunRequest("q"), sink)
    assert result.status is RunStatus.FAILED and result.error_type == "ValueError"
    assert sink.types() == ["agent_started", "agent_completed"]


async def test_run_context_is_bound_and_seen_by_tasks_the_engine_starts(
    clock: FakeClock,
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def inner() -> None:
        ctx = current_context()
        assert ctx is not None
        seen.append((ctx.user_id, ctx.run_id))
        ctx.degradation.mark("vector_db", "timeout")

    async def engine(request: RunRequest, events: RunEvents) -> str:
        await asyncio.gather(inner(), inner())
        assert events.context is current_context()
        return "ok"

    result = await ResilientEngine(engine, clock=clock).run(
        RunRequest("q", user_id="alice", run_id="run-7")
    )
    assert seen == [("alice", "run-7"), ("alice", "run-7")]
    assert result.degradation == {"vector_db": "timeout"}
    assert current_context() is None


async def test_events_emitted_after_the_run_are_ignored(clock: FakeClock) -> None:
    leaked: list[RunEvents] = []

    async def engine(request: RunRequest, events: RunEvents) -> str:
        leaked.append(events)
        return "ok"

    sink = Recorder()
    await ResilientEngine(engine, clock=clock).run(RunRequest("q"), sink)
    await leaked[0].thinking("too late")
    assert sink.types() == ["agent_started", "agent_completed"]
    assert leaked[0].closed


async def test_output_that_is_not_json_shaped_stays_out_of_the_event(clock: FakeClock) -> None:
    async def engine(request: RunRequest, events: RunEvents) -> object:
        return object()

    sink = Recorder()
    stack = ResilientEngine(engine, clock=clock)
    await stack.run(RunRequest("q"), sink)
    assert "output" not in sink.final()["data"]
    stack2 = ResilientEngine(simple_engine, clock=clock, events=EventOptions(include_output=False))
    sink2 = Recorder()
    await stack2.run(RunRequest("q"), sink2)
    assert sink2.final()["data"] == {"status": "ok"}


def test_event_options_are_validated() -> None:
    with pytest.raises(InvalidOptionsError, match=r"EventOptions\.queue_size"):
        EventOptions(queue_size=0)
    with pytest.raises(InvalidOptionsError, match=r"EventOptions\.send_timeout"):
        EventOptions(send_timeout=-1)
    assert EventOptions(flush_timeout=3).flush_timeout == 3.0
