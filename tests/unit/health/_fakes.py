"""A breaker-shaped stand-in (the real CircuitBreakerStrategy is tested with it elsewhere)."""

from __future__ import annotations

from typing import Any

from netra_resilience import Outcome, ResilienceContext
from netra_resilience.strategy import Callback, Strategy


class FakeBreaker(Strategy):
    """Has what health reads (state, retry_after, last_failure_type) and isolate()/close()."""

    kind = "circuit_breaker"

    def __init__(self, state: str = "closed", retry_after: float | None = None) -> None:
        self.state = state
        self.retry_after = retry_after
        self.last_failure_type: str | None = None
        self.calls: list[str] = []

    async def isolate(self) -> None:
        self.calls.append("isolate")
        self.state = "isolated"

    async def close(self) -> None:
        self.calls.append("close")
        self.state = "closed"

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        return await callback(context, state)


class Switch:
    """A health check whose behaviour the test flips: ok, raise, hang, or report a status."""

    def __init__(self) -> None:
        self.mode: str = "ok"
        self.error: Exception = ConnectionError("down")
        self.value: object = None
        self.calls = 0

    async def __call__(self) -> object:
        import asyncio

        self.calls += 1
        if self.mode == "raise":
            raise self.error
        if self.mode == "hang":
            await asyncio.Event().wait()
        return self.value
