"""``Tool``: one external tool and the pipeline that guards it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.predicates import TRANSIENT_EXCEPTION, OutcomePredicate
from netra_resilience.rate_limiter import RateLimiter
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
    """``Tool("search", search, rate=5, burst=10, timeout=8)``; every option has a default.

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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Tool.name must be a non-empty string")
        if not callable(self.fn):
            raise ValueError(f"Tool.fn must be an async callable, got {type(self.fn).__name__}")
        if self.rate is not None:
            number(_OWNER, "rate", self.rate)
            if self.limiter is not None:
                raise ValueError("Tool: give rate= or limiter=, not both")
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


def as_tools(tools: Mapping[str, ToolFn] | Collection[Tool]) -> tuple[Tool, ...]:
    """Accept ``{"search": fn}`` (defaults) or ``[Tool(...), ...]``; names must be unique."""
    items = (
        tuple(Tool(name, fn) for name, fn in tools.items())
        if isinstance(tools, Mapping)
        else tuple(tools)
    )
    names = [tool.name for tool in items]
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be unique, got {names}")
    return items
