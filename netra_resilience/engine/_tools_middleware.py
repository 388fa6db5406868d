"""``ToolsMiddleware`` and ``RunTools``: every tool call goes through its own pipeline."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.engine._emitter import RunEvents
from netra_resilience.engine._middleware import EngineMiddleware
from netra_resilience.engine._run_tools import RunTools
from netra_resilience.engine._tools import Tool, ToolFn, as_tools
from netra_resilience.engine._types import Engine, RunRequest
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.rate_limiter import (
    PartitionedRateLimiter,
    RateLimiter,
    RateLimiterOptions,
    TokenBucketLimiter,
)
from netra_resilience.retry import RetryOptions
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions

# Without a configured rate a tool still gets a limiter, so that an upstream Retry-After can
# pause it for every caller; this one never limits anything else.
_PAUSE_ONLY_RATE = 1e9
_PAUSE_ONLY_BURST = 1_000_000


def _bucket(rate: float, burst: int | None, clock: Clock) -> TokenBucketLimiter:
    return TokenBucketLimiter(rate=rate, burst=burst or max(1, math.ceil(rate)), clock=clock)


class RegisteredTool:
    __slots__ = ("limiter", "pipeline", "tool")

    def __init__(self, tool: Tool, pipeline: Pipeline, limiter: RateLimiter) -> None:
        self.tool = tool
        self.pipeline = pipeline
        self.limiter = limiter


def build_tool_pipeline(
    tool: Tool,
    *,
    clock: Clock,
    random: Callable[[], float] | None = None,
    telemetry: TelemetryListener | None = None,
) -> RegisteredTool:
    """retry -> rate limit -> [per-user limit] -> breaker -> timeout (see :class:`Tool`)."""
    limiter: RateLimiter
    if tool.limiter is not None:
        limiter = tool.limiter
    elif tool.rate is not None:
        limiter = _bucket(tool.rate, tool.burst, clock)
    else:
        limiter = TokenBucketLimiter(rate=_PAUSE_ONLY_RATE, burst=_PAUSE_ONLY_BURST, clock=clock)
    max_wait = tool.max_wait if tool.max_wait is not None else 2.0 / limiter.rate
    builder = PipelineBuilder(tool.name, clock=clock, random=random, telemetry=telemetry)
    if tool.max_attempts > 1:
        builder.add_retry(
            RetryOptions(
                max_attempts=tool.max_attempts,
                delay=tool.retry_delay,
                max_server_delay=tool.retry_after_cap,
                should_handle=tool.retry_on,
            )
        )
    builder.add_rate_limiter(RateLimiterOptions(limiter=limiter, max_wait=max_wait))
    if tool.per_user_rate is not None:
        user_rate, user_burst = tool.per_user_rate, tool.per_user_burst
        per_user = PartitionedRateLimiter(lambda _key: _bucket(user_rate, user_burst, clock))
        builder.add_rate_limiter(
            RateLimiterOptions(
                partitioned=per_user,
                max_wait=tool.max_wait if tool.max_wait is not None else 0.0,
                pause_hint=None,  # an upstream 429 is the whole tool's, paused above
            )
        )
    assert tool.breaker is not None
    builder.add_circuit_breaker(tool.breaker)
    if tool.timeout is not None:
        builder.add_timeout(TimeoutOptions(timeout=tool.timeout))
    return RegisteredTool(tool, builder.build(), limiter)


class ToolsMiddleware(EngineMiddleware):
    """``Middleware(ToolsMiddleware, tools=[Tool("search", search, rate=5)], clock=clock)``.

    Pipelines (and so breakers and limiters) are built once and shared by every run.
    """

    def __init__(
        self,
        app: Engine,
        *,
        tools: Mapping[str, ToolFn] | Collection[Tool] = (),
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        super().__init__(app)
        self.clock = clock or SYSTEM_CLOCK
        self.tools = {
            tool.name: build_tool_pipeline(
                tool, clock=self.clock, random=random, telemetry=telemetry
            )
            for tool in as_tools(tools)
        }

    def pipeline(self, name: str) -> Pipeline:
        return self.tools[name].pipeline

    def limiter(self, name: str) -> RateLimiter:
        """The tool-wide limiter (the one an upstream Retry-After pauses)."""
        return self.tools[name].limiter

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        return await self.app(request.with_tools(RunTools(self.tools, events)), events)
