"""Builds the backend's dependencies from :class:`Settings`, each behind its resilience.

One place declares every dependency with its criticality:

==============  ============  =====================================================================
``llm``         important     the LLM preset (``resilience.llm``): retry, breaker, timeouts, stale
                              answer from the cache, a canned reply as the last resort; an
                              adaptive concurrency limit (shed calls get the stale or canned
                              answer) and a retry budget, on Redis for every replica when
                              ``NETRA_REDIS_URL`` is set
``tool``        optional      rate limited, retried, behind a breaker; endpoints from discovery
``redis``       optional      session store primary (when configured); database as fallback
``database``    critical      conversations (SQLite file by default, PostgreSQL accepted);
                              standby for ``redis`` when Redis is configured
``auth``        critical      a token check with its own breaker; recently verified users are
                              served from the last good verdict while it is down
``analytics``   optional      engine hook, skipped while its breaker is open
``monitoring``  monitoring    engine hook, never changes health
==============  ============  =====================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from examples.agent_backend.config import Settings
from examples.agent_backend.faults import FaultSwitchTransport, fault_point
from examples.agent_backend.providers import (
    SIMULATED_BASE_URL,
    HttpTool,
    SimulatedOpenAI,
    SimulatedTool,
    answer_text,
    delta_text,
    openai_client,
)
from netra_resilience import (
    CircuitBreakerOptions,
    Criticality,
    DegradationReason,
    Dependency,
    ExecutionRejectedError,
    Hook,
    Pipeline,
    Resilience,
    RetryOptions,
    TimeoutOptions,
    Tool,
    current_degradation,
)
from netra_resilience.engine import Effect, HooksLayer, ResilientEngine, ToolsLayer
from netra_resilience.integrations.openai import (
    ResilientOpenAI,
    StreamPolicy,
    StreamTruncatedError,
    canned_reply,
)
from netra_resilience.integrations.sqlalchemy import (
    PoolBulkhead,
    SqlSessionBackend,
    create_pooled_engine,
)
from netra_resilience.routing import (
    Endpoint,
    EndpointPool,
    EndpointPoolOptions,
    EndpointSource,
    StaticEndpoints,
)
from netra_resilience.sessions import (
    InMemorySessionBackend,
    SessionBackend,
    SessionEntry,
    SessionRecord,
    SessionStore,
)

T = TypeVar("T")

MAX_REMEMBERED_USERS = 100_000

CANNED_REPLY = (
    "I'm having trouble reaching the language model right now; please try again in a minute."
)


def breaker(settings: Settings, *, minimum_throughput: int = 3) -> CircuitBreakerOptions:
    """Open after half of the calls in the window failed, for the configured break
    (``NETRA_BREAKER_WINDOW``, ``NETRA_BREAKER_SECONDS``)."""
    return CircuitBreakerOptions(
        failure_ratio=0.5,
        minimum_throughput=minimum_throughput,
        sampling_duration=settings.breaker_window,
        break_duration=settings.breaker_seconds,
    )


# -- LLM -------------------------------------------------------------------------------------
def llm_service(settings: Settings, resilience: Resilience) -> LlmService:
    """The openai SDK (real, or the simulated provider in-process) through the LLM preset."""
    transport: httpx2.AsyncBaseTransport
    base_url: str | None
    if settings.openai_api_key is None:
        simulated = SimulatedOpenAI(
            sleep=resilience.clock.sleep, latency=settings.simulated_latency
        )
        transport, api_key, base_url = simulated.transport(), "simulated", SIMULATED_BASE_URL
    else:
        transport = httpx2.AsyncHTTPTransport()
        api_key, base_url = settings.openai_api_key, settings.openai_base_url
    client = openai_client(
        FaultSwitchTransport(transport, resilience), api_key=api_key, base_url=base_url
    )
    resilience.on_close(client.close)

    attempt = settings.llm_timeout
    budget: Any = True  # the preset's retry budget: retries <= 20 % of calls + 1/s
    if settings.redis_url is not None and settings.redis_url != "memory://":
        from netra_resilience.integrations.redis import (
            RedisRetryBudget,
            redis_breaker,
            redis_client,
        )

        # One budget for every replica: a failing provider sees at most ~1.2x the calls.
        redis = resilience.closing(redis_client(settings.redis_url))
        budget = RedisRetryBudget(
            redis,
            breaker=redis_breaker(redis, clock=resilience.clock),
            key="llm",
            replicas=settings.replicas,
            clock=resilience.clock,
        )
        resilience.closing(budget)  # closed before its client (reverse order)
    # The preset keeps its LLM classification (transient provider failures, Retry-After)
    # for the fields these options leave at their defaults; only the timing is ours.
    pipeline = resilience.llm(
        "llm",
        criticality=Criticality.IMPORTANT,
        attempt_timeout=attempt,
        total_timeout=attempt * 3 + 2.0,
        retry=RetryOptions(
            max_attempts=3, delay=settings.retry_delay, max_delay=2.0, max_server_delay=60.0
        ),
        circuit_breaker=CircuitBreakerOptions(
            failure_ratio=0.5,
            minimum_throughput=5,
            sampling_duration=max(settings.breaker_window, 2 * attempt),
            break_duration=settings.breaker_seconds,
        ),
        canned_reply=canned_reply(CANNED_REPLY),
        admission=True,  # Vegas 20..200, queue 100 for at most `attempt`, 0.1 reserve
        retry_budget=budget,
    )
    streams = StreamPolicy(first_token_timeout=attempt, idle_timeout=attempt)
    return LlmService(ResilientOpenAI(client, pipeline, stream_policy=streams), settings.llm_model)


class LlmService:
    """``answer(message, tool_result)``: one chat completion through the LLM preset."""

    def __init__(self, llm: ResilientOpenAI, model: str) -> None:
        self.llm = llm
        self.model = model

    def _params(self, message: str, tool_result: str | None) -> dict[str, Any]:
        system = "You are a helpful assistant."
        if tool_result is not None:
            system += f"\nTool result: {tool_result}"
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": message},
            ],
        }

    async def answer(self, message: str, tool_result: str | None) -> str:
        completion = await self.llm.chat.completions.create(**self._params(message, tool_result))
        return answer_text(completion)

    async def stream_answer(
        self,
        message: str,
        tool_result: str | None,
        on_delta: Callable[[str], Awaitable[None]],
    ) -> str:
        """Stream the answer through ``on_delta``. Before the first chunk, failures are retried
        and fall back like any call; a stream cut later (stall, truncation) is counted by the
        breaker and the turn is answered again on the non-streaming path (stale/canned)."""
        params = self._params(message, tool_result)
        stream = await self.llm.chat.completions.create(**params, stream=True)
        parts: list[str] = []
        try:
            async for chunk in stream:
                text = delta_text(chunk)
                if text:
                    parts.append(text)
                    await on_delta(text)
        except StreamTruncatedError:
            return await self.answer(message, tool_result)
        return "".join(parts)


# -- auth --------------------------------------------------------------------------------------
class AuthService:
    """A simulated token check against an auth service, with its own breaker.

    While the service is down, users verified within ``grace`` seconds are let through on
    their last good verdict (marked ``auth=stale_cache``); anyone else gets a 503 (auth is
    critical), never the error text.
    """

    def __init__(self, settings: Settings, resilience: Resilience, *, grace: float = 600.0):
        self._clock = resilience.clock
        self._grace = grace
        self._verified: dict[str, float] = {}  # user -> last good verdict, oldest first
        self._remote = fault_point(resilience, "auth")
        self.pipeline = resilience.add(
            Dependency(
                "auth",
                Criticality.CRITICAL,
                strategies=[breaker(settings, minimum_throughput=5), TimeoutOptions(timeout=2.0)],
            )
        )

    async def _check(self, user_id: str) -> bool:
        # A real deployment calls its identity provider here.
        return await self._remote.execute(self._remote_check, user_id)

    async def _remote_check(self, user_id: str) -> bool:
        return bool(user_id)

    async def verify(self, user_id: str) -> None:
        """Raise a rejection (-> 503) when the user cannot be verified."""
        try:
            ok = await self.pipeline.execute(self._check, user_id)
        except Exception as exc:
            seen = self._verified.get(user_id)
            if seen is None or self._clock.monotonic() - seen >= self._grace:
                retry_after = getattr(exc, "retry_after", None)
                raise ExecutionRejectedError(  # only this reaches the user, not exc's text
                    "authentication is unavailable", retry_after=retry_after, dependency="auth"
                ) from None
            degradation = current_degradation()
            if degradation is not None:
                degradation.mark("auth", DegradationReason.STALE_CACHE)
            return
        if not ok:
            raise ExecutionRejectedError("not authenticated", dependency="auth")
        self._verified.pop(user_id, None)  # re-insert: the dict stays oldest-first
        self._verified[user_id] = self._clock.monotonic()
        if len(self._verified) > MAX_REMEMBERED_USERS:
            del self._verified[next(iter(self._verified))]


# -- sessions / conversations -----------------------------------------------------------------
class ChaosPool(PoolBulkhead):
    """The SQL pool bulkhead with the ``database`` switch *inside* the seat: injected latency
    holds a connection like a slow query does, so a burst queues in front of the pool."""

    def __init__(self, engine: AsyncEngine, resilience: Resilience) -> None:
        # Queue with a deadline (not a count): when Redis is down every user's session call
        # lands here, and each takes a millisecond; 2 s of queue serves thousands.
        super().__init__(engine, clock=resilience.clock, name="database", queue_timeout=2.0)
        self._chaos = fault_point(resilience, "database")

    async def run(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        chaos = self._chaos

        async def guarded(conn: AsyncConnection) -> T:
            return await chaos.execute(operation, conn)

        return await super().run(guarded)


class ChaosSessionBackend:
    """A session backend whose calls pass the ``redis`` switch."""

    def __init__(self, inner: SessionBackend, chaos: Pipeline) -> None:
        self._inner = inner
        self._chaos = chaos

    async def load(self, key: str) -> SessionRecord | None:
        return await self._chaos.execute(self._inner.load, key)

    async def save(self, record: SessionRecord, now: float) -> bool:
        return await self._chaos.execute(self._inner.save, record, now)

    async def append(self, entry: SessionEntry, now: float, keep: int) -> None:
        await self._chaos.execute(self._inner.append, entry, now, keep)

    async def entries(self, key: str, limit: int) -> Sequence[SessionEntry]:
        return await self._chaos.execute(self._inner.entries, key, limit)

    async def ping(self) -> None:
        await self._chaos.execute(self._inner.ping)


def session_store(
    settings: Settings, resilience: Resilience
) -> tuple[SessionStore, SqlSessionBackend]:
    """Conversations on Redis with the database as fallback, or on the database alone; and
    the database backend (its table is created on startup).

    Registers ``redis`` (optional) and ``database`` with their health checks. The database
    is critical, but with Redis in front it is a *standby*: a warning while Redis serves,
    critical only while the request path depends on it. A PostgreSQL server is *shared* by
    every replica: its outage fails ``/health`` but not readiness (see the README's health
    section); the embedded SQLite file is this replica's own."""
    engine = create_pooled_engine(settings.database_url)
    resilience.on_close(engine.dispose)  # closed last: the pool and the store use it
    pool = resilience.closing(ChaosPool(engine, resilience))
    database = SqlSessionBackend(pool)
    shared = not settings.database_url.startswith("sqlite")

    def database_health(standby_for: str | None) -> Dependency:
        return Dependency(
            "database",
            Criticality.CRITICAL,
            check=pool.check,
            component_type="datastore",
            probe_interval=2.0,
            check_timeout=1.5,
            shared=shared,
            standby_for=standby_for,
        )

    if settings.redis_url is None:
        store = SessionStore(
            database, None, dependency="database", clock=resilience.clock, primary_timeout=3.0
        )
        resilience.add(database_health(None))
        return resilience.closing(store), database
    primary: SessionBackend
    if settings.redis_url == "memory://":
        primary = InMemorySessionBackend()
    else:
        from netra_resilience.integrations.redis import RedisSessionBackend, redis_client

        primary = RedisSessionBackend(resilience.closing(redis_client(settings.redis_url)))
    # The fallback's breaker times out after 3 s of database work plus the pool's 2 s queue
    # deadline: a burst the pool turns away is load shedding, never "the database is down".
    store = SessionStore(
        ChaosSessionBackend(primary, fault_point(resilience, "redis")),
        database,
        dependency="redis",
        clock=resilience.clock,
        fallback_timeout=3.0,
        retry_interval=1.0,
    )
    resilience.add(
        Dependency(
            "redis",
            Criticality.OPTIONAL,
            check=store.check_primary,
            component_type="datastore",
            probe_interval=2.0,
            check_timeout=1.5,
        )
    )
    resilience.add(database_health("redis"))
    return resilience.closing(store), database


# -- tool endpoints --------------------------------------------------------------------------
class DiscoveredEndpoints:
    """The tool's endpoints from service discovery / DNS, through the ``discovery`` switch.

    When resolution fails the pool keeps the last-known-good set (``discovery=stale_endpoints``).
    """

    def __init__(self, inner: EndpointSource, chaos: Pipeline) -> None:
        self._inner = inner
        self._chaos = chaos

    async def resolve(self) -> Sequence[Endpoint]:
        return await self._chaos.execute(self._inner.resolve)


def tool_pool(
    endpoints: Sequence[Endpoint | str], settings: Settings, resilience: Resilience
) -> EndpointPool:
    source = DiscoveredEndpoints(StaticEndpoints(endpoints), fault_point(resilience, "discovery"))
    return EndpointPool(
        "tool_endpoints",
        source,
        options=EndpointPoolOptions(
            refresh_interval=settings.discovery_ttl,
            retry_interval=1.0,
            max_stale=3600.0,
            discovery_flag="discovery",
        ),
        clock=resilience.clock,
    )


SIMULATED_TOOL_ENDPOINTS = ("http://tool-a.internal:8080", "http://tool-b.internal:8080")


def external_tool(settings: Settings, resilience: Resilience) -> Tool:
    """The agent's tool: idempotent (every attempt of a call carries its idempotency key, so
    the upstream does the work once), rate limited, retried once, behind its breaker, on the
    endpoint pool (whose endpoints come from discovery, each behind its own breaker).

    Two fault switches: ``tool`` acts before the request reaches the upstream, and
    ``tool_response`` after it did the work (``latency`` there: committed, answer stalled;
    the call ends ``tool=outcome_unknown`` with the effect done once)."""
    backend: SimulatedTool | HttpTool
    if settings.tool_url is None:
        backend = SimulatedTool(sleep=resilience.clock.sleep, latency=settings.simulated_latency)
        endpoints = tool_pool(SIMULATED_TOOL_ENDPOINTS, settings, resilience)
    else:
        backend = resilience.closing(HttpTool(settings.tool_url))
        endpoints = tool_pool([backend.endpoint], settings, resilience)
    switch = fault_point(resilience, "tool")
    response_switch = fault_point(resilience, "tool_response")

    async def call_tool(query: str, idempotency_key: str | None = None) -> dict[str, Any]:
        async def on(endpoint: Endpoint) -> dict[str, Any]:
            answer = await switch.execute(backend.fetch, endpoint, query, idempotency_key)
            return await response_switch.execute(_deliver, answer)

        return await endpoints.execute(on)

    return Tool(
        "tool",
        call_tool,
        effect=Effect.IDEMPOTENT,
        rate=20,
        burst=20,
        timeout=3.0,
        max_attempts=2,
        retry_delay=settings.retry_delay,
        retry_after_cap=1.0,
        breaker=breaker(settings),
    )


async def _deliver(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


# -- hooks -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HookSinks:
    """Where the analytics and monitoring stand-ins deliver (the last 100 events each)."""

    analytics: list[Mapping[str, Any]] = field(default_factory=list)
    monitoring: list[Mapping[str, Any]] = field(default_factory=list)


def event_hooks(settings: Settings, resilience: Resilience, sinks: HookSinks) -> list[Hook]:
    """Analytics (optional) and monitoring (never changes health): each behind its breaker,
    skipped while it is open, never delaying the user."""
    return [
        Hook(
            "analytics",
            hook_sender(fault_point(resilience, "analytics"), sinks.analytics),
            timeout=0.5,
            criticality=Criticality.OPTIONAL,
            breaker=breaker(settings),
        ),
        Hook(
            "monitoring",
            hook_sender(fault_point(resilience, "monitoring"), sinks.monitoring),
            timeout=0.5,
            criticality=Criticality.MONITORING,
            breaker=breaker(settings),
        ),
    ]


def hook_sender(
    chaos: Pipeline, sink: list[Mapping[str, Any]]
) -> Callable[[Mapping[str, Any]], Awaitable[None]]:
    """An analytics/monitoring client stand-in: keeps the last events it received."""

    async def deliver(event: Mapping[str, Any]) -> None:
        sink.append(event)
        del sink[:-100]

    async def send(event: Mapping[str, Any]) -> None:
        await chaos.execute(deliver, event)

    return send


def register_engine_dependencies(
    resilience: Resilience, engine: ResilientEngine, hooks: Sequence[Hook], tool: Tool
) -> None:
    """``/health`` reads the engine's own breakers for the tool and the hooks."""
    tools = engine.layer(ToolsLayer)
    resilience.add(Dependency(tool.name, Criticality.OPTIONAL, pipeline=tools.pipeline(tool.name)))
    hook_layer = engine.layer(HooksLayer)
    for hook in hooks:
        breaker_of_hook = hook_layer.breaker(hook.name)
        resilience.add(Dependency(hook.name, hook.criticality, breaker=breaker_of_hook))
