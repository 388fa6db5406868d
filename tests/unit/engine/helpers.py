"""Sinks and engines shared by the engine tests."""

from __future__ import annotations

import asyncio
from typing import Any

from netra_resilience.engine import RunEvents, RunRequest
from netra_resilience.testing import FakeClock

SECRET = "sk-live-4f9d2c7be13a0000"


class Recorder:
    """A sink that records events; optionally slow (on the fake clock) or failing."""

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        delay: float = 0.0,
        fail_times: int = 0,
        hang: bool = False,
    ) -> None:
        self.clock = clock
        self.delay = delay
        self.fail_times = fail_times
        self.hang = hang
        self.events: list[dict[str, Any]] = []
        self.calls = 0

    async def __call__(self, event: dict[str, Any]) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.delay and self.clock is not None:
            await self.clock.sleep(self.delay)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise ConnectionError("socket closed")
        self.events.append(event)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def final(self) -> dict[str, Any]:
        assert self.events and self.events[-1]["type"] == "agent_completed"
        return self.events[-1]


async def simple_engine(request: RunRequest, events: RunEvents) -> str:
    await events.thinking("planning")
    return f"answer to {request.input}"


class Boom(Exception):
    pass
