"""A run inside a request shares the request's Degradation; outside one it gets its own."""

from __future__ import annotations

from netra_resilience import ResilienceContext, use_context
from netra_resilience.engine import RunEvents, RunRequest, wrap_engine
from netra_resilience.testing import FakeClock


async def test_run_marks_reach_the_bound_request_degradation() -> None:
    @wrap_engine(clock=FakeClock())
    async def agent(request: RunRequest, events: RunEvents) -> str:
        events.context.degradation.mark("llm", "stale_cache")
        return "ok"

    request_context = ResilienceContext("request", user_id="u1")
    with use_context(request_context):
        result = await agent.run(RunRequest("hi", user_id="u1"))
    assert result.degradation == {"llm": "stale_cache"}
    assert request_context.degradation.header_value() == "llm=stale_cache"

    alone = await agent.run(RunRequest("hi", user_id="u2"))
    assert alone.degradation == {"llm": "stale_cache"}
    assert request_context.degradation.history[-1].reason == "stale_cache"
    assert len(request_context.degradation.history) == 1
