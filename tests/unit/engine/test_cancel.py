"""A cancelled run (client gone) releases everything and ends with one final event."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from netra_resilience.circuit_breaker import CircuitState
from netra_resilience.engine import (
    EventOptions,
    Hook,
    HooksLayer,
    RunEvents,
    RunRequest,
    Tool,
    ToolsLayer,
    wrap_engine,
)
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_cancelled_run_releases_everything_and_only_the_final_event_follows(
    clock: FakeClock,
) -> None:
    in_tool = asyncio.Event()
    hook_events: list[str] = []

    async def slow_search(query: str) -> str:
        in_tool.set()
        await clock.sleep(100.0)
        return "late"

    async def analytics(event: Mapping[str, Any]) -> None:
        hook_events.append(event["type"])

    async def engine(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("searching")
        try:
            await request.tools.call("search", "q")
        except asyncio.CancelledError:
            await events.thinking("cleaning up")  # too late: the run is being cancelled
            raise
        await events.thinking("never")
        return "never"

    stack = wrap_engine(
        engine,
        tools=[Tool("search", slow_search, rate=5, timeout=30)],
        hooks={"analytics": analytics},
        clock=clock,
    )
    sink = Recorder()
    run = asyncio.ensure_future(stack.run(RunRequest("q", user_id="u1"), sink))
    await in_tool.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await stack.aclose()  # finishes the detached delivery and drains the hook queue

    assert sink.types() == ["agent_started", "agent_thinking", "tool_executing", "agent_completed"]
    final = sink.final()["data"]
    assert final["status"] == "failed" and final["cancelled"] is True
    assert final["error"]["type"] == "CancelledError"
    assert hook_events[-1] == "agent_completed"  # analytics still learns how it ended
    # released: no timers, no tasks, no permits held, cancellation not counted as a failure
    assert clock.pending == 0
    assert not _other_tasks()
    tools = stack.layer(ToolsLayer)
    assert tools.limiter("search").try_acquire(1) == 0.0
    assert stack.layer(HooksLayer).breaker("analytics").state is CircuitState.CLOSED


async def test_cancel_with_a_dead_sink_returns_at_once_and_delivery_stays_bounded(
    clock: FakeClock,
) -> None:
    started = asyncio.Event()

    async def engine(request: RunRequest, events: RunEvents) -> str:
        started.set()
        await clock.sleep(50.0)
        return "never"

    stack = wrap_engine(
        engine, clock=clock, events=EventOptions(send_timeout=1.0, flush_timeout=3.0)
    )
    sink = Recorder(hang=True)
    run = asyncio.ensure_future(stack.run(RunRequest("q"), sink))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    start = clock.monotonic()
    await advance_until_done(clock, stack.aclose())
    assert clock.monotonic() - start <= 3.0
    assert clock.pending == 0 and not _other_tasks()


async def test_cancel_during_an_inline_hook_is_not_a_hook_failure(clock: FakeClock) -> None:
    in_hook = asyncio.Event()

    async def audit(event: Mapping[str, Any]) -> None:
        in_hook.set()
        await clock.sleep(0.1)

    async def engine(request: RunRequest, events: RunEvents) -> str:
        return "ok"

    stack = wrap_engine(
        engine, hooks=[Hook("audit", audit, background=False, timeout=1.0)], clock=clock
    )
    sink = Recorder()
    run = asyncio.ensure_future(stack.run(RunRequest("q"), sink))
    await in_hook.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await stack.aclose()
    assert sink.types() == ["agent_started", "agent_completed"]
    assert stack.layer(HooksLayer).breaker("audit").health.failures == 0
    assert clock.pending == 0
