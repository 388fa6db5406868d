"""Report a failure that surfaced after a call returned (a stream cut mid-way) to breakers.

A pipeline's verdict ends when the call returns, which for a stream is when its first chunk
(or, over HTTP, its headers) arrived. A stream that dies later would otherwise look healthy to
the circuit breaker. This replays the late failure through each breaker of the pipeline as a
one-off outcome, so the breaker's window counts it (an open breaker ignores it).
"""

from __future__ import annotations

from typing import Any

from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline


async def _failed(context: ResilienceContext, state: Any) -> Outcome[Any]:
    return Outcome(None, state)


async def report_failure(
    pipeline: Pipeline | None, error: BaseException, context: ResilienceContext | None = None
) -> None:
    """Count ``error`` as a failed call in every closed/half-open breaker of ``pipeline``.

    The replay runs in a throw-away context: it must not mark the request's degradation (the
    caller already marks the truncation itself).
    """
    if pipeline is None:
        return
    for strategy in pipeline.strategies:
        if strategy.kind != "circuit_breaker":
            continue
        if str(getattr(strategy, "state", "")) in ("open", "isolated"):
            continue  # already refusing calls: nothing to learn
        key = context.operation_key if context is not None else pipeline.name
        await strategy.execute(_failed, ResilienceContext(key), error)
