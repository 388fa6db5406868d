"""Builds the backend's dependencies from :class:`Settings`, each behind its resilience.

One place declares every dependency with its criticality:

==============  ============  =====================================================================
``llm``         important     ``standard_llm_pipeline``: retry, breaker, timeouts, stale answer
                              from the cache, a canned reply as the last resort
``tool``        optional      rate limited, retried, behind a breaker; endpoints from discovery
``redis``       optional      session store primary (when configured); database as fallback
``database``    critical      conversations (SQLite file by default, PostgreSQL accepted)
``auth``        critical      a token check with its own breaker; recently verified users are
                              served from the last good verdict while it is down
``analytics``   optional      engine hook, skipped while its breaker is open
``monitoring``  monitoring    engine hook, never changes health
==============  ============  =====================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from examples.agent_backend.config import Settings
from examples.agent_backend.providers import LlmProvider, answer_text, delta_text
from netra_resilience import (
    DegradationReason,
    ExecutionRejectedError,
    Pipeline,
    PipelineBuilder,
    current_degradation,
)
from netra_resilience.cache import InMemoryTTLCache
from netra_resilience.chaos import ChaosControl, ChaosOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.fallback import FallbackArgs, FallbackOptions
from netra_resilience.integrations.openai import canned_reply
from netra_resilience.integrations.sqlalchemy import (
    PoolBulkhead,
    SqlSessionBackend,
    create_pooled_engine,
)
from netra_resilience.llm import (
    LLM_BREAKER_FAILURE,
    LlmRequest,
    StreamPolicy,
    StreamTruncatedError,
    llm_retry_after,
    standard_llm_pipeline,
    standard_llm_retry,
)
from netra_resilience.predicates import ANY_EXCEPTION
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
    SessionRecord,
    SessionStore,
)
from netra_resilience.timeout import TimeoutOptions

MAX_REMEMBERED_USERS = 100_000

CANNED_REPLY = (
    "I'm having trouble reaching the language model right now; please try again in a minute."
)


def chaos_pipeline(name: str, chaos: ChaosControl, clock: Clock) -> Pipeline:
    """Where the demo's fault switches act: the call into the dependency itself."""
    return PipelineBuilder(name, clock=clock).add_chaos(ChaosOptions(control=chaos)).build()


# -- LLM -------------------------------------------------------------------------------------
def llm_pipeline(settings: Settings, clock: Clock) -> Pipeline:
    attempt = settings.llm_timeout
    return standard_llm_pipeline(
        "llm",
        clock=clock,
        attempt_timeout=attempt,
        total_timeout=attempt * 3 + 2.0,
        retry=standard_llm_retry(clock, delay=settings.retry_delay, max_delay=2.0),
        circuit_breaker=CircuitBreakerOptions(
            failure_ratio=0.5,
            minimum_throughput=5,
            sampling_duration=max(settings.breaker_window, 2 * attempt),
            break_duration=settings.breaker_seconds,
            should_handle=LLM_BREAKER_FAILURE,
            retry_after=llm_retry_after(clock),
        ),
        cache=InMemoryTTLCache(max_entries=10_000, clock=clock),
        canned_reply=canned_reply(CANNED_REPLY, clock=clock),
    )


class LlmService:
    """``answer(message, tool_result)``: one chat completion through the LLM pipeline."""

    def __init__(
        self,
        provider: LlmProvider,
        pipeline: Pipeline,
        chaos: Pipeline,
        model: str,
        *,
        stream_policy: StreamPolicy | None = None,
    ) -> None:
        self.provider = provider
        self.pipeline = pipeline
        self._chaos = chaos
        self.model = model
        provider.bind(pipeline, stream_policy or StreamPolicy())

    def _request(self, message: str, tool_result: str | None, *, stream: bool) -> LlmRequest:
        system = "You are a helpful assistant."
        if tool_result is not None:
            system += f"\nTool result: {tool_result}"
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": message},
            ],
        }
        if stream:
            params["stream"] = True
        return LlmRequest("chat", params)

    async def answer(self, message: str, tool_result: str | None) -> str:
        request = self._request(message, tool_result, stream=False)
        completion = await self.pipeline.execute(self._attempt, request)
        return answer_text(completion)

    async def stream_answer(
        self,
        message: str,
        tool_result: str | None,
        on_delta: Callable[[str], Awaitable[None]],
    ) -> str:
        """Stream the answer through ``on_delta``. Before the first chunk, failures are retried
        and fall back like any call; a stream cut later (stall, truncation) is reported to the
        breaker and the turn is answered again on the non-streaming path (stale/canned)."""
        request = self._request(message, tool_result, stream=True)
        stream = await self.pipeline.execute(self._attempt, request)
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

    async def _attempt(self, request: LlmRequest) -> Any:
        raw = await self._chaos.execute(self.provider.complete, request)
        if not hasattr(raw, "__aiter__"):
            answer_text(raw)  # malformed: fails this attempt (retried, counted, not cached)
        return raw


# -- auth --------------------------------------------------------------------------------------
class AuthService:
    """A simulated token check against an auth service, with its own breaker.

    The backend presents its service token on each check. While the service is down, users
    verified within ``grace`` seconds are let through on their last good verdict (marked
    ``auth=stale_cache``); anyone else gets a 503 (auth is critical), never the error text.
    """

    def __init__(self, *, clock: Clock, chaos: Pipeline, grace: float = 600.0) -> None:
        self._clock = clock
        self._chaos = chaos
        self._grace = grace
        self._verified: dict[str, float] = {}
        self.pipeline: Pipeline | None = None  # set by the registry (see strategies())

    def strategies(self, settings: Settings) -> list[Any]:
        return [
            FallbackOptions(
                action=self._last_good_verdict,
                should_handle=ANY_EXCEPTION,
                reason=DegradationReason.STALE_CACHE,
            ),
            CircuitBreakerOptions(
                failure_ratio=0.5,
                minimum_throughput=5,
                sampling_duration=settings.breaker_window,
                break_duration=settings.breaker_seconds,
            ),
            TimeoutOptions(timeout=2.0),
        ]

    async def _check(self, user_id: str) -> bool:
        # A real deployment calls its identity provider here.
        return await self._chaos.execute(self._remote_check, user_id)

    async def _remote_check(self, user_id: str) -> bool:
        return bool(user_id)

    def _last_good_verdict(self, args: FallbackArgs) -> bool:
        user_id = args.args[0] if args.args else ""
        seen = self._verified.get(user_id)
        if seen is not None and self._clock.monotonic() - seen < self._grace:
            return True
        retry_after = getattr(args.outcome.exception, "retry_after", None)
        raise ExecutionRejectedError(
            "authentication is unavailable", retry_after=retry_after, dependency="auth"
        )

    async def verify(self, user_id: str) -> None:
        """Raise a rejection (-> 503) when the user cannot be verified."""
        assert self.pipeline is not None
        ok = await self.pipeline.execute(self._check, user_id)
        if not ok:
            raise ExecutionRejectedError("not authenticated", dependency="auth")
        degradation = current_degradation()
        if degradation is None or degradation.reason("auth") is None:
            self._verified.pop(user_id, None)  # re-insert: the dict stays oldest-first
            self._verified[user_id] = self._clock.monotonic()  # a fresh verdict, not a stale one
            if len(self._verified) > MAX_REMEMBERED_USERS:
                del self._verified[next(iter(self._verified))]


# -- sessions / conversations -----------------------------------------------------------------
class ChaosPool(PoolBulkhead):
    """The SQL pool bulkhead with the demo's fault switch *inside* the seat: injected latency
    holds a connection like a slow query does, so a burst queues in front of the pool."""

    def __init__(self, engine: Any, *, chaos: Pipeline, clock: Clock, **kwargs: Any) -> None:
        super().__init__(engine, clock=clock, name="database", **kwargs)
        self._chaos = chaos

    async def run(self, operation: Callable[[Any], Awaitable[Any]]) -> Any:
        chaos = self._chaos

        async def guarded(conn: Any) -> Any:
            return await chaos.execute(operation, conn)

        return await super().run(guarded)


class ChaosSessionBackend:
    """A session backend whose calls pass the ``redis`` fault switch (for the stand-in)."""

    def __init__(self, inner: SessionBackend, chaos: Pipeline) -> None:
        self._inner = inner
        self._chaos = chaos

    async def load(self, key: str) -> SessionRecord | None:
        record: SessionRecord | None = await self._chaos.execute(self._inner.load, key)
        return record

    async def save(self, record: SessionRecord, now: float) -> bool:
        saved: bool = await self._chaos.execute(self._inner.save, record, now)
        return saved

    async def ping(self) -> None:
        await self._chaos.execute(self._inner.ping)


def session_store(
    settings: Settings, chaos: ChaosControl, clock: Clock
) -> tuple[SessionStore, SqlSessionBackend, ChaosPool]:
    engine = create_pooled_engine(settings.database_url)
    pool = ChaosPool(engine, chaos=chaos_pipeline("database", chaos, clock), clock=clock)
    database = SqlSessionBackend(pool)
    if settings.redis_url is None:
        store = SessionStore(
            database, None, dependency="database", clock=clock, primary_timeout=5.0
        )
        return store, database, pool
    primary: SessionBackend
    if settings.redis_url == "memory://":
        primary = InMemorySessionBackend()
    else:
        from netra_resilience.integrations.redis import RedisSessionBackend, redis_client

        primary = RedisSessionBackend(redis_client(settings.redis_url))
    store = SessionStore(
        ChaosSessionBackend(primary, chaos_pipeline("redis", chaos, clock)),
        database,
        dependency="redis",
        clock=clock,
        fallback_timeout=5.0,
        retry_interval=1.0,
    )
    return store, database, pool


# -- tool endpoints --------------------------------------------------------------------------
class DiscoveredEndpoints:
    """The tool's endpoints from service discovery / DNS, through the ``discovery`` switch.

    When resolution fails the pool keeps the last-known-good set (``discovery=stale_endpoints``).
    """

    def __init__(self, inner: EndpointSource, chaos: Pipeline) -> None:
        self._inner = inner
        self._chaos = chaos

    async def resolve(self) -> Sequence[Endpoint]:
        endpoints: Sequence[Endpoint] = await self._chaos.execute(self._inner.resolve)
        return endpoints


def tool_pool(
    endpoints: Sequence[Endpoint | str], settings: Settings, chaos: ChaosControl, clock: Clock
) -> EndpointPool:
    source = DiscoveredEndpoints(
        StaticEndpoints(endpoints), chaos_pipeline("discovery", chaos, clock)
    )
    return EndpointPool(
        "tool_endpoints",
        source,
        options=EndpointPoolOptions(
            refresh_interval=settings.discovery_ttl,
            retry_interval=1.0,
            max_stale=3600.0,
            discovery_flag="discovery",
        ),
        clock=clock,
    )


SIMULATED_TOOL_ENDPOINTS = ("http://tool-a.internal:8080", "http://tool-b.internal:8080")


def clock_or_default(clock: Clock | None) -> Clock:
    return clock or SYSTEM_CLOCK


def hook_sender(chaos: Pipeline, sink: list[Mapping[str, Any]]) -> Callable[..., Awaitable[None]]:
    """An analytics/monitoring client stand-in: keeps the last events it received."""

    async def deliver(event: Mapping[str, Any]) -> None:
        sink.append(event)
        del sink[:-100]

    async def send(event: Mapping[str, Any]) -> None:
        await chaos.execute(deliver, event)

    return send
