"""RunSteps: how a run's tool calls and ``events.step`` calls execute. The default runs them
directly; a durable recorder (here one in memory, standing in for DBOS) replays recorded
steps when a run is executed again after its process died, with the events the dead
execution delivered withheld and new ones numbered after them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import pytest

from netra_resilience.effects import Effect, derive_idempotency_key
from netra_resilience.engine import (
    Event,
    InMemoryEventLog,
    RunEvents,
    RunRequest,
    Stored,
    Tool,
    ToolCall,
    ToolResult,
    wrap_engine,
)
from netra_resilience.testing import FakeClock


class MemorySteps:
    """Records each step's result by name; a later execution gets it instead of running it."""

    def __init__(self, store: dict[str, Any], last_seq: int = 0, *, ended: bool = False) -> None:
        self.store = store
        self.last_seq = last_seq
        self.ended = ended
        self.calls: list[ToolCall] = []
        self.events: RunEvents | None = None

    @property
    def durable(self) -> bool:
        return True

    async def begin(self, events: RunEvents) -> None:
        self.events = events
        if self.last_seq:
            events.replay_through(self.last_seq, ended=self.ended)

    async def _recorded(self, name: str, work: Callable[[], Awaitable[Any]]) -> Any:
        if name in self.store:
            return self.store[name]
        assert self.events is not None
        self.events.go_live()
        value = self.store[name] = await work()
        return value

    async def call(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        return await self._recorded(name, lambda: fn(*args, **kwargs))

    async def tool(
        self, call: ToolCall, execute: Callable[[], Awaitable[ToolResult]]
    ) -> ToolResult:
        self.calls.append(call)
        result: ToolResult = await self._recorded(f"tool:{call.call_id}", execute)
        return result


class DyingLog:
    """The shared log as one process sees it: after ``kill()`` nothing more reaches it."""

    def __init__(self, inner: InMemoryEventLog) -> None:
        self.inner = inner
        self.dead = False

    def kill(self) -> None:
        self.dead = True

    async def append(self, event: Event) -> Stored:
        if self.dead:
            return Stored.LOCAL_ONLY
        return await self.inner.append(event)

    async def read(self, run_id: str, last_seq: int) -> list[Event]:
        return await self.inner.read(run_id, last_seq)

    def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        return self.inner.follow(run_id, last_seq)

    async def last_seq(self, run_id: str) -> int:
        return await self.inner.last_seq(run_id)


class Upstream:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.hang_on: str | None = None

    async def __call__(self, what: str) -> str:
        self.calls.append(what)
        if what == self.hang_on:
            await asyncio.Event().wait()
        return f"did {what}"


def agent_for(upstream: Upstream) -> Any:
    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("first")
        first = await request.tools.call("act", "one")
        answer = await events.step("llm", upstream, "think")
        await events.thinking("second", answer=answer)
        second = await request.tools.call("act", "two")
        assert first.ok and second.ok
        return f"{first.value} / {answer} / {second.value}"

    return agent


async def test_a_recovered_run_replays_completed_steps_and_continues_the_seq(
    clock: FakeClock,
) -> None:
    shared = InMemoryEventLog(clock=clock)
    upstream = Upstream()
    tools = [Tool("act", upstream, effect=Effect.IDEMPOTENT)]
    store: dict[str, Any] = {}
    # the first execution dies while its second tool call is in flight
    first_log = DyingLog(shared)
    first = wrap_engine(agent_for(upstream), tools=tools, clock=clock, event_log=first_log)
    upstream.hang_on = "two"
    task = asyncio.create_task(first.run(RunRequest("q", run_id="r1"), steps=MemorySteps(store)))
    await clock.settle()
    assert upstream.calls == ["one", "think", "two"]
    delivered = [int(e["seq"]) for e in await shared.read("r1", 0)]
    first_log.kill()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert delivered == [1, 2, 3, 4, 5, 6]  # started, thinking, act one, thinking, executing two
    # another process executes the run again from the log's end
    upstream.hang_on = None
    second = wrap_engine(agent_for(upstream), tools=tools, clock=clock, event_log=shared)
    steps = MemorySteps(store, await shared.last_seq("r1"))
    result = await second.run(RunRequest("q", run_id="r1"), steps=steps)
    assert result.output == "did one / did think / did two"
    assert upstream.calls == ["one", "think", "two", "two"]  # only the unfinished call again
    events = await shared.read("r1", 0)
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events][6:] == ["tool_completed", "agent_completed"]
    assert result.events.emitted == 2  # the replayed events were withheld
    # the recorder saw each call with its stable key: the second execution sends the same one
    keys = {call.call_id: call.idempotency_key for call in steps.calls}
    assert keys == {
        "act-1": derive_idempotency_key("r1", "act-1"),
        "act-2": derive_idempotency_key("r1", "act-2"),
    }


async def test_a_run_whose_end_is_in_the_log_delivers_nothing_again(clock: FakeClock) -> None:
    log = InMemoryEventLog(clock=clock)
    upstream = Upstream()
    engine = wrap_engine(
        agent_for(upstream),
        tools=[Tool("act", upstream, effect=Effect.READ)],
        clock=clock,
        event_log=log,
    )
    store: dict[str, Any] = {}
    await engine.run(RunRequest("q", run_id="r2"), steps=MemorySteps(store))
    before = await log.read("r2", 0)
    again = await engine.run(
        RunRequest("q", run_id="r2"),
        steps=MemorySteps(store, int(before[-1]["seq"]), ended=True),
    )
    assert again.events.emitted == 0
    assert await log.read("r2", 0) == before
    assert upstream.calls == ["one", "think", "two"]


async def test_live_events_follow_the_log_even_when_the_replay_emitted_fewer(
    clock: FakeClock,
) -> None:
    log = InMemoryEventLog(clock=clock)
    for seq in range(1, 8):  # an earlier execution delivered 1..7, then died
        await log.append({"type": "agent_thinking", "run_id": "r3", "seq": seq, "data": {}})

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("replayed")  # seq 2 this time: withheld
        await events.step("llm", _echo, [], "new")  # runs for real: live from here
        await events.thinking("new")
        return "done"

    engine = wrap_engine(agent, clock=clock, event_log=log)
    await engine.run(RunRequest("q", run_id="r3"), steps=MemorySteps({}, 7))
    assert [(int(e["seq"]), e["type"]) for e in await log.read("r3", 7)] == [
        (8, "agent_thinking"),
        (9, "agent_completed"),
    ]


async def test_default_steps_run_directly(clock: FakeClock) -> None:
    seen: list[Any] = []

    async def agent(request: RunRequest, events: RunEvents) -> Any:
        assert not events.steps.durable
        return await events.step("llm", lambda x: _echo(seen, x), 3)

    engine = wrap_engine(agent, clock=clock)
    assert (await engine.run("q")).output == 3
    assert seen == [3]


async def _echo(seen: list[Any], value: Any) -> Any:
    seen.append(value)
    return value


@pytest.mark.parametrize(
    ("effect", "key_given", "repeatable"),
    [
        (Effect.READ, False, True),
        (Effect.IDEMPOTENT, False, True),
        (Effect.UNSAFE, False, False),
        (Effect.UNSAFE, True, True),
    ],
)
def test_which_interrupted_calls_a_recovered_run_may_repeat(
    effect: Effect, key_given: bool, repeatable: bool
) -> None:
    assert ToolCall("t", "t-1", effect, "k", key_given).repeatable is repeatable


async def test_a_given_key_is_marked_as_given(clock: FakeClock) -> None:
    upstream = Upstream()

    async def agent(request: RunRequest, events: RunEvents) -> None:
        await request.tools.call("act", "x", idempotency_key="order-17")
        await request.tools.call("act", "y")

    steps = MemorySteps({})
    engine = wrap_engine(agent, tools=[Tool("act", upstream)], clock=clock)
    await engine.run(RunRequest("q", run_id="r4"), steps=steps)
    assert [(c.effect, c.idempotency_key, c.key_given) for c in steps.calls] == [
        (Effect.UNSAFE, "order-17", True),
        (Effect.UNSAFE, derive_idempotency_key("r4", "act-2"), False),
    ]
