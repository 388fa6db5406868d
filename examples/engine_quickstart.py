"""Engine quick start: wrap your agent so its runs survive failing dependencies.

Run it with ``python examples/engine_quickstart.py`` (no server, no API key). It shows:

* one ``Resilience`` runtime; a plain ``async def`` engine and a class-based engine, each
  wrapped in one call (``resilience.engine``); closing the runtime drains their hook queues;
* an analytics hook that is down: the answer does not change, the hook is skipped once its
  breaker opens, and the user is told ``analytics=skipped``;
* a tool whose upstream answers 429 with Retry-After: the call waits it out once, while other
  callers get a typed ``ToolFailure`` instead of hammering the upstream;
* an engine that crashes with a secret in its message: the user still gets a final
  ``agent_completed`` with ``status=failed`` and no secret.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from netra_resilience import CircuitBreakerOptions, Hook, Resilience, RunRequest, Tool
from netra_resilience.engine import RunEvents, ToolFailure


# --- the dependencies: one analytics service that is down, one rate-limited tool ------------
async def send_analytics(event: Mapping[str, Any]) -> None:
    raise ConnectionError("analytics.internal:443 refused")


class TooManyRequests(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429 Too Many Requests")
        self.retry_after = retry_after  # what an HTTP client reads from Retry-After


class WeatherApi:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, city: str) -> str:
        self.calls += 1
        if self.calls == 1:
            raise TooManyRequests(retry_after=0.2)
        return f"sunny in {city}"


# --- engine 1: a plain async function -----------------------------------------------------
async def assistant(request: RunRequest, events: RunEvents) -> str:
    await events.thinking("checking the weather")
    result = await request.tools.call("weather", request.input)
    if isinstance(result, ToolFailure):  # a failed tool is a value the agent can reason about
        return f"I can't reach the weather service right now ({result.reason})."
    return f"It is {result.value}."


# --- engine 2: a class ----------------------------------------------------------------------
class Planner:
    def __init__(self, model: str) -> None:
        self.model = model

    async def __call__(self, request: RunRequest, events: RunEvents) -> str:
        await events.thinking(f"asking {self.model}")
        if request.input == "crash":
            raise RuntimeError("provider rejected key sk-live-1234567890abcdef")
        return f"plan for {request.input!r}"


def show(event: dict[str, Any]) -> None:
    flags = event["degradation"] or ""
    print(f"  {event['seq']:>2} {event['type']:<16} {json.dumps(event['data']):<70} {flags}")


async def sink(event: dict[str, Any]) -> None:  # in a real app: websocket.send_json
    show(event)


async def main() -> None:
    weather = WeatherApi()
    # One runtime per application; leaving the block drains the engines' hook queues.
    async with Resilience() as resilience:
        hooks = [
            Hook("analytics", send_analytics, breaker=CircuitBreakerOptions(minimum_throughput=2))
        ]
        tools = [Tool("weather", weather, rate=20, burst=5, timeout=2.0)]
        weather_agent = resilience.engine(assistant, hooks=hooks, tools=tools)
        planner = resilience.engine(Planner("gpt-4o-mini"), hooks={"monitoring": send_analytics})

        print("weather runs (concurrent; the first one meets a 429 with Retry-After: 0.2):")
        results = await asyncio.gather(
            weather_agent.run(RunRequest("Paris", user_id="ann"), sink),
            weather_agent.run(RunRequest("Oslo", user_id="bob"), None),
        )
        for result in results:
            print(f"  -> {result.status}: {result.output}  degraded: {result.degradation}")
        print(f"  upstream weather calls: {weather.calls} (one 429, one retry after it)\n")

        print("planner run whose engine crashes (secret in the exception message):")
        crashed = await planner.run(RunRequest("crash", user_id="cy"), sink)
        print(f"  -> {crashed.status}; the exception stays server-side: {crashed.error_type}\n")

        print("a few more runs: the analytics hook is skipped once its breaker opens:")
        for city in ("Rome", "Lima", "Kyiv"):
            result = await weather_agent.run(RunRequest(city, user_id="dee"))
            print(f"  -> {result.status}: {result.output}  degraded: {result.degradation}")


if __name__ == "__main__":
    asyncio.run(main())
