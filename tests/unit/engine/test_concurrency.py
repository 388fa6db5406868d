"""200 concurrent runs for 200 users with analytics down: every event, in order, no bleed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from netra_resilience import current_degradation
from netra_resilience.context import current_context
from netra_resilience.engine import RunEvents, RunRequest, RunStatus, Tool, wrap_engine
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder

USERS = 200


async def test_200_concurrent_users_with_analytics_down(clock: FakeClock) -> None:
    analytics_calls = 0

    async def analytics(event: Mapping[str, Any]) -> None:
        nonlocal analytics_calls
        analytics_calls += 1
        await asyncio.Event().wait()  # down: hangs until its timeout

    async def profile(user: str) -> str:
        await asyncio.sleep(0)  # a real suspension point: runs interleave
        return f"profile of {user}"

    async def engine(request: RunRequest, events: RunEvents) -> str:
        ctx = current_context()
        assert ctx is not None and ctx.user_id == request.user_id
        await events.thinking(f"thinking for {request.user_id}")
        await asyncio.sleep(0)
        result = await request.tools.call("profile", request.user_id)
        degradation = current_degradation()
        assert degradation is not None
        degradation.mark(f"probe_{request.user_id}", "fallback")  # a flag only this user has
        await events.thinking("answering")
        assert result.ok
        return f"answer for {request.user_id}"

    stack = wrap_engine(
        engine, hooks={"analytics": analytics}, tools=[Tool("profile", profile)], clock=clock
    )
    sinks = {f"user{i}": Recorder() for i in range(USERS)}
    results = await advance_until_done(
        clock,
        asyncio.gather(
            *(
                stack.run(RunRequest("hi", user_id=u, run_id=f"run-{u}"), s)
                for u, s in sinks.items()
            )
        ),
    )
    await advance_until_done(clock, stack.aclose())

    expected = [
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_degraded",
        "agent_thinking",
        "agent_completed",
    ]
    for result, (user, sink) in zip(results, sinks.items(), strict=True):
        assert result.output == f"answer for {user}"
        assert result.status is RunStatus.DEGRADED
        types = [e["type"] for e in sink.events if not _about_analytics(e)]
        assert types == expected, (user, sink.types())
        assert [e["seq"] for e in sink.events] == list(range(1, len(sink.events) + 1))
        assert {e["run_id"] for e in sink.events} == {f"run-{user}"}
        for event in sink.events:
            flags = set(event["degradation"]) - {"analytics"}
            assert flags <= {f"probe_{user}"}, (user, event)
        assert set(sink.final()["degradation"]) - {"analytics"} == {f"probe_{user}"}
        assert result.events.dropped == 0 and result.events.failed == 0
    assert analytics_calls < USERS  # its breaker opened: most calls were skipped, not awaited


def _about_analytics(event: dict[str, Any]) -> bool:
    """The notice that analytics degraded: present or not depending on timing."""
    return bool(event["type"] == "agent_degraded" and event["data"]["dependency"] == "analytics")
