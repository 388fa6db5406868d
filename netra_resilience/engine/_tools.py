"""Tools: per-tool pipelines (rate limit, retry, breaker, timeout) returning typed results."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.effects import Effect
from netra_resilience.engine._run import Engine, PassThroughLayer, RunEvents, RunRequest, RunTools
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.predicates import TRANSIENT_EXCEPTION, OutcomePredicate
from netra_resilience.rate_limiter import (
    PartitionedRateLimiter,
    RateLimiter,
    RateLimiterOptions,
    TokenBucketLimiter,
)
from netra_resilience.retry import RetryOptions
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions
from netra_resilience.validation import (
    Seconds,
    duration,
    integer,
    number,
    optional_duration,
    set_field,
)

ToolFn = Callable[..., Awaitable[Any]]

_OWNER = "Tool"


def default_tool_breaker() -> CircuitBreakerOptions:
    """Open after half of at least 5 calls in 30 s failed; stay open 15 s (or Retry-After)."""
    return CircuitBreakerOptions(
        failure_ratio=0.5, minimum_throughput=5, sampling_duration=30.0, break_duration=15.0
    )


@dataclass(frozen=True, slots=True)
class Tool:
    """``Tool("search", search, effect="read", rate=5, timeout=8)``; every option has a default.

    ``effect`` says what repeating a call does upstream (:mod:`netra_resilience.effects`):

    * ``"read"``: no side effect; retried on any transient failure, timeouts included.
    * ``"idempotent"``: retried like a read, every attempt with the call's idempotency key
      (the function receives it as ``idempotency_key=`` when it has that parameter; the
      resilient HTTP transports send it as the ``Idempotency-Key`` header).
    * ``"unsafe"`` (the default: a tool that declares nothing may send an e-mail or issue a
      refund): retried only when the failure provably happened before the request left
      (connection refused, DNS failure, an HTTP 429 or 503 answer). A timeout or a reset after
      the request may have reached the upstream is not retried.

    When an ``idempotent`` or ``unsafe`` call ends that way, the agent gets a
    :class:`ToolFailure` with reason ``outcome_unknown`` ("may have taken effect; check before
    calling it again"), the run's degradation is marked ``<tool>=outcome_unknown`` and the
    ``tool_completed`` event says ``"outcome_unknown": true``.

    Each call runs ``retry -> rate limit -> [per-user limit] -> breaker -> timeout -> tool``:

    * the limiter sits *inside* the retry because every attempt is an upstream request and
      spends upstream quota; an upstream ``Retry-After`` (an exception's ``retry_after``)
      pauses this tool's limiter for every caller, so concurrent calls are refused locally
      instead of each hitting the 429 again. Without ``rate`` the limiter only does that.
    * ``max_wait``: how long a call may wait for a permit (default: two token intervals, what
      a retry needs right after a pause, which empties the bucket); a call that would wait
      longer is refused at once with ``retry_after``.
    * ``per_user_rate``/``per_user_burst``: an extra bucket per caller scope (tenant/user).
    * ``timeout`` bounds one attempt; the breaker counts timeouts as failures.
    * ``retry_after_cap``: the longest ``Retry-After`` the retry will sleep through.
    """

    name: str
    fn: ToolFn
    _: KW_ONLY
    rate: float | None = None
    burst: int | None = None
    limiter: RateLimiter | None = None
    max_wait: Seconds | None = None
    per_user_rate: float | None = None
    per_user_burst: int | None = None
    timeout: Seconds | None = 10.0
    max_attempts: int = 3
    retry_delay: Seconds = 0.5
    retry_after_cap: Seconds = 30.0
    retry_on: OutcomePredicate = TRANSIENT_EXCEPTION
    breaker: CircuitBreakerOptions | None = None
    effect: Effect = Effect.UNSAFE
    takes_idempotency_key: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidOptionsError("Tool", "name", "must be a non-empty string")
        if not callable(self.fn):
            raise InvalidOptionsError(
                "Tool", "fn", f"must be an async callable, got {type(self.fn).__name__}"
            )
        if self.rate is not None:
            number(_OWNER, "rate", self.rate)
            if self.limiter is not None:
                raise InvalidOptionsError("Tool", "rate", "excludes limiter=: give one of them")
        if self.burst is not None:
            integer(_OWNER, "burst", self.burst, minimum=1)
        if self.per_user_rate is not None:
            number(_OWNER, "per_user_rate", self.per_user_rate)
        if self.per_user_burst is not None:
            integer(_OWNER, "per_user_burst", self.per_user_burst, minimum=1)
        set_field(
            self, "max_wait", optional_duration(_OWNER, "max_wait", self.max_wait, allow_zero=True)
        )
        set_field(self, "timeout", optional_duration(_OWNER, "timeout", self.timeout))
        integer(_OWNER, "max_attempts", self.max_attempts, minimum=1, maximum=100)
        set_field(
            self, "retry_delay", duration(_OWNER, "retry_delay", self.retry_delay, allow_zero=True)
        )
        set_field(
            self, "retry_after_cap", duration(_OWNER, "retry_after_cap", self.retry_after_cap)
        )
        if self.breaker is None:
            set_field(self, "breaker", default_tool_breaker())
        try:
            set_field(self, "effect", Effect(self.effect))
        except ValueError:
            allowed = ", ".join(effect.value for effect in Effect)
            raise InvalidOptionsError(
                _OWNER, "effect", f"must be one of {allowed}, got {self.effect!r}"
            ) from None
        set_field(self, "takes_idempotency_key", _takes_idempotency_key(self.fn))


def _takes_idempotency_key(fn: ToolFn) -> bool:
    """Does ``fn`` declare an ``idempotency_key`` parameter (decided once, at construction)?"""
    try:
        parameter = inspect.signature(fn).parameters.get("idempotency_key")
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def as_tools(tools: Mapping[str, ToolFn] | Collection[Tool]) -> tuple[Tool, ...]:
    """Accept ``{"search": fn}`` (defaults) or ``[Tool(...), ...]``; names must be unique."""
    items = (
        tuple(Tool(name, fn) for name, fn in tools.items())
        if isinstance(tools, Mapping)
        else tuple(tools)
    )
    names = [tool.name for tool in items]
    if len(set(names)) != len(names):
        raise InvalidOptionsError("wrap_engine", "tools", f"names must be unique, got {names}")
    return items


# Without a configured rate a tool still gets a limiter, so that an upstream Retry-After can
# pause it for every caller; this one never limits anything else.
_PAUSE_ONLY_RATE = 1e9
_PAUSE_ONLY_BURST = 1_000_000


def _bucket(rate: float, burst: int | None, clock: Clock) -> TokenBucketLimiter:
    return TokenBucketLimiter(rate=rate, burst=burst or max(1, math.ceil(rate)), clock=clock)


class RegisteredTool:
    """A tool with its pipeline and limiter, built once per stack (what a call reads)."""

    __slots__ = ("effect", "effect_value", "limiter", "needs_key", "pipeline", "tool")

    def __init__(self, tool: Tool, pipeline: Pipeline, limiter: RateLimiter) -> None:
        self.tool = tool
        self.pipeline = pipeline
        self.limiter = limiter
        self.effect = tool.effect
        self.effect_value = tool.effect.value  # what tool_executing says, read once
        self.needs_key = tool.effect.needs_key


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


class ToolsLayer(PassThroughLayer):
    """``EngineLayer(ToolsLayer, tools=[Tool("search", search, rate=5)], clock=clock)``.

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
