"""``wrap_engine`` and the middleware onion, with a function engine and a class engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from netra_resilience.engine import (
    EngineLayer,
    PassThroughLayer,
    ResilientEngine,
    RunEvents,
    RunRequest,
    RunStatus,
    Tool,
    ToolsLayer,
    wrap_engine,
)
from netra_resilience.testing import FakeClock
from tests.unit.engine.helpers import Recorder


class Planner:
    """A class-based engine: state set up once, ``__call__`` per run."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    async def __call__(self, request: RunRequest, events: RunEvents) -> str:
        await events.thinking("looking up the weather")
        weather = await request.tools.call("weather", request.input)
        text = weather.value if weather.ok else weather.reason
        return f"{self.greeting} {request.user_id}: {text}"


async def weather(city: str) -> str:
    return f"sunny in {city}"


async def test_class_engine_with_wrap_engine(clock: FakeClock) -> None:
    analytics_seen: list[str] = []

    async def analytics(event: Mapping[str, Any]) -> None:
        analytics_seen.append(event["type"])

    async with wrap_engine(
        Planner("Hello"), hooks={"analytics": analytics}, tools={"weather": weather}, clock=clock
    ) as agent:
        sink = Recorder()
        result = await agent.run(RunRequest("Paris", user_id="ann"), sink)
    assert result.output == "Hello ann: sunny in Paris" and result.status is RunStatus.OK
    assert sink.types() == [
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_completed",
    ]
    assert analytics_seen == sink.types()  # drained on close


async def test_function_engine_with_the_decorator(clock: FakeClock) -> None:
    @wrap_engine(tools=[Tool("weather", weather, rate=2)], clock=clock)
    async def agent(request: RunRequest, events: RunEvents) -> str:
        result = await request.tools.call("weather", request.input)
        assert result.ok
        return "done"

    assert isinstance(agent, ResilientEngine)
    result = await agent("Oslo")  # a bare input becomes RunRequest("Oslo")
    assert result.output == "done"
    assert agent.layer(ToolsLayer).limiter("weather").rate == 2


async def test_middleware_onion_order_and_a_custom_layer(clock: FakeClock) -> None:
    order: list[str] = []

    class Trace(PassThroughLayer):
        def __init__(self, app: Any, *, label: str) -> None:
            super().__init__(app)
            self.label = label
            self.closed = False

        async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
            order.append(f"{self.label}>")
            try:
                return await self.app(request, events)
            finally:
                order.append(f"<{self.label}")

        async def aclose(self) -> None:
            self.closed = True

    async def engine(request: RunRequest, events: RunEvents) -> str:
        order.append("engine")
        return "ok"

    stack = ResilientEngine(
        engine,
        layers=[EngineLayer(Trace, label="outer"), EngineLayer(Trace, label="inner")],
        clock=clock,
    )
    await stack.run(RunRequest())
    assert order == ["outer>", "inner>", "engine", "<inner", "<outer"]
    await stack.aclose()
    assert all(layer.closed for layer in stack.layers)  # type: ignore[attr-defined]
    assert "Trace" in repr(EngineLayer(Trace, label="x"))
    with pytest.raises(LookupError):
        stack.layer(ToolsLayer)
    with pytest.raises(TypeError):
        ResilientEngine(engine, layers=[Trace])  # type: ignore[list-item]
