"""``Resilience``: the one runtime object an application owns.

Clock, randomness and telemetry are given to it once. It builds pipelines (the LLM preset
included), holds the dependencies (service registry + health monitor), wraps engines, and
closes all of it: ``async with Resilience() as resilience``, ``await resilience.aclose()``,
or ``FastAPI(lifespan=resilience.lifespan)`` (``install(app, resilience)`` does that for you).
Nothing is global: two runtimes in one process (two apps, or tests) never share state.
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, Self, TypeVar, overload

from netra_resilience.cache import InMemoryTTLCache
from netra_resilience.chaos import ChaosControl
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.engine import (
    Engine,
    EngineLayer,
    EventLog,
    EventOptions,
    Hook,
    HookFn,
    ResilientEngine,
    Tool,
    ToolFn,
    wrap_engine,
)
from netra_resilience.health import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_PROBE_INTERVAL,
    Criticality,
    Dependency,
    HealthMonitor,
    ServiceRegistry,
)
from netra_resilience.llm import standard_llm_pipeline
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import Seconds

__all__ = ["Resilience"]

_log = logging.getLogger("netra_resilience")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
"""What ``FastAPI(lifespan=...)`` takes: ``lifespan(app)`` -> async context manager."""

C = TypeVar("C", bound="SupportsAclose")


class SupportsAclose(Protocol):
    def aclose(self) -> Awaitable[object]: ...


DEFAULT_CACHE_ENTRIES = 10_000
"""Bound of the default LLM answer cache (per runtime): last good answers served stale."""


class Resilience:
    """The application's resilience runtime (create one per application, not per request).

    ``clock`` / ``random`` / ``telemetry`` reach every pipeline, breaker, engine and health
    check built through it — tests pass one ``FakeClock`` here and nowhere else.
    ``dependencies``, ``probe_interval`` and ``check_timeout`` configure the service registry
    behind ``/health``.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
        dependencies: Iterable[Dependency] = (),
        probe_interval: Seconds = DEFAULT_PROBE_INTERVAL,
        check_timeout: Seconds = DEFAULT_CHECK_TIMEOUT,
    ) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.random: Callable[[], float] = random or _random.Random().random
        self.telemetry = telemetry
        self.registry = ServiceRegistry(
            dependencies,
            probe_interval=probe_interval,
            check_timeout=check_timeout,
            clock=self.clock,
            random=self.random,
            telemetry=telemetry,
        )
        self.chaos = ChaosControl()
        """The runtime's fault switchboard for drills and demos: a pipeline with
        ``add_chaos(control=resilience.chaos)`` fails or slows down on command (one dict
        lookup per call while nothing is switched on)."""
        self._closers: list[SupportsAclose] = []
        self._entered = 0
        self._closed = False

    # -- building ----------------------------------------------------------------------
    def pipeline(self, name: str, *, instance: str = "") -> PipelineBuilder:
        """A builder on this runtime's clock, randomness and telemetry."""
        return PipelineBuilder(
            name, instance=instance, clock=self.clock, random=self.random, telemetry=self.telemetry
        )

    def add(self, dependency: Dependency) -> Pipeline:
        """Register a dependency (shown by ``/health``, weighed by its criticality); returns
        its pipeline — run the dependency's calls through it."""
        return self.registry.add(dependency)

    def llm(
        self,
        name: str = "llm",
        *,
        criticality: Criticality | str = Criticality.IMPORTANT,
        cache: Any = True,
        **preset: Any,
    ) -> Pipeline:
        """The LLM preset (timeouts, retry honouring Retry-After, breaker, stale answers,
        fallbacks; see :func:`netra_resilience.llm.standard_llm_pipeline` for ``preset``),
        registered as dependency ``name``.

        ``cache=True`` (the default) keeps the last good answers in a bounded in-memory cache
        (per caller, ``DEFAULT_CACHE_ENTRIES``) to serve stale when the provider fails; pass a
        backend (e.g. Redis) to share it, or ``None`` for no cache.
        """
        backend = InMemoryTTLCache(max_entries=DEFAULT_CACHE_ENTRIES, clock=self.clock)
        pipeline = standard_llm_pipeline(
            name,
            clock=self.clock,
            random=self.random,
            telemetry=self.telemetry,
            cache=backend if cache is True else cache,
            **preset,
        )
        self.registry.add(Dependency(name, criticality, pipeline=pipeline))
        return pipeline

    @overload
    def engine(self, engine: Engine, /, **options: Any) -> ResilientEngine: ...

    @overload
    def engine(
        self,
        engine: None = None,
        /,
        *,
        hooks: Mapping[str, HookFn] | Collection[Hook] = ...,
        tools: Mapping[str, ToolFn] | Collection[Tool] = ...,
        layers: list[EngineLayer] = ...,
        events: EventOptions | None = ...,
        hook_queue_size: int = ...,
        event_log: EventLog | None = ...,
    ) -> Callable[[Engine], ResilientEngine]: ...

    def engine(
        self, engine: Engine | None = None, /, **options: Any
    ) -> ResilientEngine | Callable[[Engine], ResilientEngine]:
        """Wrap an agent engine (or, without one, return a decorator): events always end with
        ``agent_completed``, hooks sit behind their own breakers, tools behind their
        pipelines. The runtime drains its hook queues on close."""

        def wrap(target: Engine) -> ResilientEngine:
            wrapped = wrap_engine(
                target, clock=self.clock, random=self.random, telemetry=self.telemetry, **options
            )
            return self.closing(wrapped)

        return wrap if engine is None else wrap(engine)

    def closing(self, resource: C) -> C:
        """Close ``resource`` (anything with ``aclose()``: a pool, a client) with the
        runtime, in reverse order of registration; returns it."""
        self._closers.append(resource)
        return resource

    @property
    def monitor(self) -> HealthMonitor:
        """The health monitor (probes run while the runtime is open)."""
        return self.registry.monitor

    # -- lifetime ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start background work (health probes). Re-entrant: nested starts are counted."""
        if self._closed:
            raise RuntimeError("this Resilience runtime is closed; create a new one")
        self._entered += 1
        if self._entered == 1:
            await self.monitor.start()

    async def aclose(self) -> None:
        """Stop the probes, drain engines' hook queues, close registered resources.

        Every resource is closed even when one fails; the first failure is re-raised."""
        if self._closed:
            return
        self._closed = True
        self._entered = 0
        first: BaseException | None = None
        try:
            await self.monitor.stop()
        except Exception as exc:
            first = exc
        while self._closers:
            resource = self._closers.pop()
            try:
                await resource.aclose()
            except Exception as exc:
                _log.warning("closing %s failed: %s", type(resource).__name__, type(exc).__name__)
                first = first or exc
        if first is not None:
            raise first

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._entered -= 1
        if self._entered <= 0:
            await self.aclose()

    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[None]:
        """``FastAPI(lifespan=resilience.lifespan)``: open on startup, close on shutdown."""
        return self._lifespan()

    def around(self, inner: Lifespan | None) -> Lifespan:
        """A lifespan that runs the application's own ``inner`` lifespan outside this runtime:
        its startup first (so health checks can use the pools it creates), its shutdown last."""

        @asynccontextmanager
        async def composed(app: Any) -> AsyncIterator[Any]:
            if inner is None:
                async with self:
                    yield None
                return
            async with inner(app) as state, self:
                yield state

        return composed

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self:
            yield

    def on_close(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Await ``callback()`` when the runtime closes, in the same reverse order as
        :meth:`closing`: for resources whose close has another name (``AsyncEngine.dispose``,
        ``AsyncOpenAI.close``)."""
        if not callable(callback):
            raise TypeError(f"on_close() takes an async callable, got {type(callback).__name__}")
        self._closers.append(_CloseCallback(callback))


class _CloseCallback:
    """Adapts ``callback()`` to ``aclose()`` (the closers' one protocol)."""

    __slots__ = ("_callback",)

    def __init__(self, callback: Callable[[], Awaitable[object]]) -> None:
        self._callback = callback

    async def aclose(self) -> None:
        await self._callback()
