"""``Resilience``: one clock given once, dependencies registered, everything closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from netra_resilience import Dependency, Hook, Resilience, RunRequest
from netra_resilience.cache import CacheStrategy, InMemoryTTLCache
from netra_resilience.health import Criticality
from netra_resilience.testing import FakeClock, advance_until_done


def running(resilience: Resilience) -> bool:
    return resilience.monitor.running


class Closer:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def aclose(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} failed")


def test_the_clock_given_once_reaches_everything_built() -> None:
    clock = FakeClock()
    resilience = Resilience(clock=clock, dependencies=[Dependency("db", "critical")])
    assert resilience.pipeline("x").add_timeout(1).build().clock is clock
    assert resilience.llm().clock is clock
    assert resilience.registry.clock is clock
    assert resilience.registry.pipeline("db").clock is clock


def test_llm_is_registered_with_its_criticality_and_a_bounded_cache() -> None:
    resilience = Resilience(clock=FakeClock())
    pipeline = resilience.llm("chat", criticality="optional")
    assert resilience.registry.criticality_of("chat") is Criticality.OPTIONAL
    assert resilience.registry.pipeline("chat") is pipeline
    cache = pipeline.find(CacheStrategy)
    assert cache is not None
    backend = cache.backend
    assert isinstance(backend, InMemoryTTLCache) and backend.max_entries > 0
    assert resilience.llm("plain", cache=None).find(CacheStrategy) is None


async def test_close_drains_engines_and_closes_resources_in_reverse_order() -> None:
    clock = FakeClock()
    log: list[str] = []
    seen: list[Any] = []

    async def analytics(event: Any) -> None:
        seen.append(event)

    async with Resilience(clock=clock) as resilience:
        assert running(resilience)
        resilience.closing(Closer("pool", log))
        resilience.closing(Closer("client", log))

        @resilience.engine(hooks=[Hook("analytics", analytics)])
        async def agent(request: RunRequest, events: Any) -> str:
            return f"hi {request.user_id}"

        result = await advance_until_done(clock, agent.run("hello", user_id="u1"))
        assert result.output == "hi u1"
    assert not running(resilience)
    assert log == ["client", "pool"]
    assert seen, "the hook queue was drained on close"


async def test_every_resource_is_closed_even_when_one_fails() -> None:
    log: list[str] = []
    resilience = Resilience(clock=FakeClock())
    resilience.closing(Closer("a", log))
    resilience.closing(Closer("b", log, fail=True))
    resilience.closing(Closer("c", log))
    await resilience.start()
    with pytest.raises(RuntimeError, match="b failed"):
        await resilience.aclose()
    assert log == ["c", "b", "a"]
    await resilience.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await resilience.start()


async def test_nested_entries_are_counted() -> None:
    resilience = Resilience(clock=FakeClock())
    async with resilience, resilience.lifespan():
        assert running(resilience)
    assert not running(resilience)


async def test_around_runs_the_apps_startup_first_and_its_shutdown_last() -> None:
    events: list[str] = []
    resilience = Resilience(clock=FakeClock())
    resilience.closing(Closer("runtime closed", events))

    @asynccontextmanager
    async def app_lifespan(app: object) -> AsyncIterator[dict[str, str]]:
        events.append("app startup")
        yield {"state": "x"}
        events.append("app shutdown")

    async with resilience.around(app_lifespan)(None) as state:
        assert state == {"state": "x"}
        assert running(resilience)
        events.append("serving")
    assert events == ["app startup", "serving", "runtime closed", "app shutdown"]


def test_run_refuses_a_caller_beside_a_request() -> None:
    resilience = Resilience()

    async def agent(request: RunRequest, events: Any) -> str:
        return "x"

    engine = resilience.engine(agent)
    with pytest.raises(TypeError, match="inside the RunRequest"):
        engine.run(RunRequest("x"), user_id="u").send(None)


async def test_on_close_awaits_callbacks_in_the_same_reverse_order_as_closing() -> None:
    log: list[str] = []

    async def dispose() -> None:
        log.append("engine disposed")

    resilience = Resilience(clock=FakeClock())
    resilience.on_close(dispose)  # registered first: closed last
    resilience.closing(Closer("pool", log))
    async with resilience:
        pass
    assert log == ["pool", "engine disposed"]
    with pytest.raises(TypeError, match="async callable"):
        resilience.on_close("dispose")  # type: ignore[arg-type]
