"""Hooks behind breakers: a dead analytics or monitoring hook never changes the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.context import current_context
from netra_resilience.engine import (
    Hook,
    HooksLayer,
    ResilientEngine,
    RunRequest,
    RunStatus,
    wrap_engine,
)
from netra_resilience.health import Criticality
from netra_resilience.testing import FakeClock, advance_until_done
from tests.unit.engine.helpers import Recorder, simple_engine

BREAKER = CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=3, break_duration=30.0)


class DownHook:
    """A hook that raises or hangs, counting its calls."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0

    async def __call__(self, event: Mapping[str, Any]) -> None:
        self.calls += 1
        if self.mode == "hang":
            await asyncio.Event().wait()
        raise ConnectionError("analytics.example.com refused")


async def _timed_runs(stack: ResilientEngine, clock: FakeClock, n: int) -> list[tuple[float, Any]]:
    out = []
    for i in range(n):
        start = clock.monotonic()
        result = await advance_until_done(clock, stack.run(RunRequest(i), Recorder()))
        out.append((clock.monotonic() - start, result))
    return out


@pytest.mark.parametrize("name", ["analytics", "monitoring"])
async def test_inline_hook_hanging_adds_at_most_its_timeout_then_nothing(
    clock: FakeClock, name: str
) -> None:
    hook = DownHook("hang")
    stack = wrap_engine(
        simple_engine,
        hooks=[Hook(name, hook, background=False, timeout=0.5, breaker=BREAKER)],
        clock=clock,
    )
    runs = await _timed_runs(stack, clock, 6)

    latencies = [elapsed for elapsed, _ in runs]
    assert latencies == [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]  # one timeout per run, then ~0
    assert [r.output for _, r in runs] == [f"answer to {i}" for i in range(6)]
    assert all(r.status is RunStatus.DEGRADED for _, r in runs)
    assert all(r.degradation == {name: "skipped"} for _, r in runs)
    assert hook.calls == 3  # skipped, not awaited, once the breaker opened
    assert stack.layer(HooksLayer).breaker(name).state is CircuitState.OPEN
    await stack.aclose()


@pytest.mark.parametrize("name", ["analytics", "monitoring"])
async def test_inline_hook_raising_is_skipped_after_breaker_opens(
    clock: FakeClock, name: str
) -> None:
    hook = DownHook("raise")
    stack = wrap_engine(
        simple_engine, hooks=[Hook(name, hook, background=False, breaker=BREAKER)], clock=clock
    )
    runs = await _timed_runs(stack, clock, 5)
    assert [elapsed for elapsed, _ in runs] == [0.0] * 5
    assert [r.output for _, r in runs] == [f"answer to {i}" for i in range(5)]
    assert hook.calls == 3


@pytest.mark.parametrize("mode", ["hang", "raise"])
@pytest.mark.parametrize("name", ["analytics", "monitoring"])
async def test_background_hook_down_costs_the_run_nothing(
    clock: FakeClock, name: str, mode: str
) -> None:
    hook = DownHook(mode)
    stack = wrap_engine(
        simple_engine, hooks=[Hook(name, hook, timeout=1.0, breaker=BREAKER)], clock=clock
    )
    for i in range(3):  # runs return at once: hooks only queue work
        start = clock.monotonic()
        result = await stack.run(RunRequest(i), Recorder())
        assert clock.monotonic() == start and result.output == f"answer to {i}"
    await clock.advance(5.0)  # the workers time the queued hook calls out; the breaker opens
    assert stack.layer(HooksLayer).breaker(name).state is CircuitState.OPEN
    calls = hook.calls
    assert calls <= 4  # the rest of the queue was skipped once the breaker opened

    sink = Recorder()
    result = await stack.run(RunRequest("later"), sink)
    assert result.output == "answer to later" and hook.calls == calls
    assert result.degradation == {name: "skipped"}
    assert sink.types()[:2] == ["agent_started", "agent_degraded"]
    assert sink.events[1]["data"] == {"dependency": name, "reason": "skipped"}
    assert sink.final()["data"]["status"] == "degraded"
    await stack.aclose()
    assert clock.pending == 0


async def test_hook_sees_a_read_only_event_and_the_run_context(clock: FakeClock) -> None:
    seen: list[tuple[str, str | None, bool]] = []

    async def audit(event: Mapping[str, Any]) -> None:
        ctx = current_context()
        seen.append((event["type"], ctx.user_id if ctx else None, type(event) is MappingProxyType))

    stack = wrap_engine(
        simple_engine,
        hooks=[
            Hook("audit", audit, background=False, events={"agent_completed"}),
            Hook("analytics", audit),
        ],
        clock=clock,
    )
    await stack.run(RunRequest("q", user_id="bob"))
    await stack.aclose()  # drains the background hook queue
    assert ("agent_completed", "bob", True) in seen
    assert sorted(t for t, _, _ in seen) == sorted(
        ["agent_completed", "agent_started", "agent_thinking", "agent_completed"]
    )
    assert all(user == "bob" and read_only for _, user, read_only in seen)


async def test_isolated_hook_is_skipped_without_being_called(clock: FakeClock) -> None:
    calls: list[str] = []

    async def analytics(event: Mapping[str, Any]) -> None:
        calls.append(event["type"])

    stack = wrap_engine(simple_engine, hooks={"analytics": analytics}, clock=clock)
    await stack.layer(HooksLayer).breaker("analytics").isolate()
    result = await stack.run(RunRequest("q"))
    await stack.aclose()
    assert calls == [] and result.degradation == {"analytics": "skipped"}


def test_hook_options_are_validated() -> None:
    async def fn(event: Mapping[str, Any]) -> None:
        return None

    assert Hook("m", fn, criticality="Monitoring").criticality is Criticality.MONITORING
    assert Hook("a", fn).criticality is Criticality.OPTIONAL
    with pytest.raises(InvalidOptionsError, match=r"Hook\.criticality"):
        Hook("a", fn, criticality="vital")
    with pytest.raises(InvalidOptionsError, match=r"Hook\.timeout"):
        Hook("a", fn, timeout=0)
    with pytest.raises(ValueError, match="unique"):
        wrap_engine(simple_engine, hooks=[Hook("a", fn), Hook("a", fn)])
