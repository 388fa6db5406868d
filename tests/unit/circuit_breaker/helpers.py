"""Shared helpers: build a breaker pipeline on the fake clock, drive calls through it."""

from __future__ import annotations

import asyncio
from typing import Any

from netra_resilience import Pipeline, PipelineBuilder, ResilienceContext
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitBreakerStrategy
from netra_resilience.outcome import Outcome
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.testing import FakeClock

SECRET = "sk-secret-token-123"


class UpstreamError(ConnectionError):
    """An upstream failure; its message carries a secret that must never leak."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__(f"upstream failed for key {SECRET}")
        self.retry_after = retry_after


def build(
    clock: FakeClock, listener: TelemetryListener | None = None, name: str = "llm", **options: Any
) -> tuple[Pipeline, CircuitBreakerStrategy]:
    pipeline = (
        PipelineBuilder(name, clock=clock, telemetry=listener)
        .add_circuit_breaker(CircuitBreakerOptions(**options))
        .build()
    )
    strategy = pipeline.strategies[0]
    assert isinstance(strategy, CircuitBreakerStrategy)
    return pipeline, strategy


async def ok() -> str:
    return "ok"


async def boom(retry_after: float | None = None) -> str:
    raise UpstreamError(retry_after)


async def succeed(pipeline: Pipeline, times: int = 1) -> list[Outcome[Any]]:
    return [await pipeline.execute_outcome(ok) for _ in range(times)]


async def fail(pipeline: Pipeline, times: int = 1, retry_after: float | None = None) -> None:
    for _ in range(times):
        outcome = await pipeline.execute_outcome(boom, retry_after)
        assert outcome.exception is not None


async def call(pipeline: Pipeline, context: ResilienceContext | None = None) -> Outcome[Any]:
    return await pipeline.execute_outcome(ok, context=context)


class Gate:
    """A callable whose calls block until released; counts how many got in."""

    def __init__(self, *, fails: bool = False) -> None:
        self.event = asyncio.Event()
        self.entered = 0
        self.fails = fails

    async def __call__(self) -> str:
        self.entered += 1
        await self.event.wait()
        if self.fails:
            raise UpstreamError()
        return "ok"

    def release(self) -> None:
        self.event.set()
