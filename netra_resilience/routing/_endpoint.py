"""Endpoints, their per-endpoint breaker and in-flight count, and how one is selected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState, StateListener
from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import ExecutionRejectedError, InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import Seconds, duration, integer, set_field

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A scheme/host/port triple (plus free-form ``meta``, e.g. a deployment name).

    Endpoints compare by ``key`` only, so a re-resolved address keeps its breaker, its latency
    history and its sticky sessions across refreshes.
    """

    host: str
    port: int
    scheme: str = "http"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, url: str, **meta: Any) -> Endpoint:
        """``Endpoint.parse("https://10.0.0.7:8443")``; the default port follows the scheme."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.hostname:
            raise ValueError(f"endpoint URL has no host: {url!r}")
        scheme = parts.scheme.lower()
        port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme, 80)
        return cls(parts.hostname, port, scheme, dict(meta))

    @property
    def key(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.key


class EndpointResolutionError(ExecutionRejectedError):
    """Resolution failed and no last-known-good endpoint set is young enough to use.

    A rejection (never retried by the retry strategy): retrying at once cannot help before
    the next resolution attempt, which ``retry_after`` points at when known.
    """


class NoHealthyEndpointError(ExecutionRejectedError):
    """Every endpoint of the pool is open, isolated, evicted or probed down.

    ``retry_after`` is the earliest moment one of them admits a call again (``None`` when
    no breaker will reopen on its own: isolated or probed down).
    """

    def __init__(
        self,
        message: str = "no healthy endpoint",
        *,
        retry_after: float | None = None,
        dependency: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, dependency=dependency)


_CLOSED = CircuitState.CLOSED
_HALF_OPEN = CircuitState.HALF_OPEN


class EndpointBreaker(Protocol):
    """What the pool uses of a breaker strategy (``CircuitBreakerStrategy`` fits)."""

    @property
    def state(self) -> CircuitState: ...
    @property
    def closed(self) -> bool:
        """Closed now, without a clock read (the selection fast path)."""
        ...

    @property
    def retry_after(self) -> float | None: ...
    @property
    def name(self) -> str: ...
    def add_state_listener(self, listener: StateListener) -> Callable[[], None]: ...
    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]: ...
    async def isolate(self) -> None: ...
    async def close(self) -> None: ...


def build_breaker(
    options: CircuitBreakerOptions,
    *,
    name: str,
    clock: Clock,
    random: Callable[[], float],
    listener: TelemetryListener | None,
) -> EndpointBreaker:
    build = BuildContext(name=name, clock=clock, random=random, listener=listener)
    breaker: EndpointBreaker = options.create_strategy(build)  # type: ignore[assignment]
    return breaker


def admits(breaker: EndpointBreaker) -> bool:
    """Closed, or half-open with a probe slot free (reading ``state`` makes lazy transitions)."""
    if breaker.closed:  # the common case, without a clock read
        return True
    state = breaker.state
    return state is _CLOSED or (state is _HALF_OPEN and breaker.retry_after is None)


class PoolMember:
    """One endpoint's live state inside a pool.

    ``latency`` is an exponentially decaying average of call durations: a sample ``dt``
    seconds after the previous one weighs ``1 - exp(-dt / decay)``, so an endpoint that was
    slow a minute ago is not punished forever and a burst of samples does not swamp history.
    """

    __slots__ = (
        "breaker",
        "endpoint",
        "failed_opens",
        "in_flight",
        "latency",
        "latency_at",
        "probed_down",
        "successes",
    )

    def __init__(self, endpoint: Endpoint, breaker: EndpointBreaker) -> None:
        self.endpoint = endpoint
        self.breaker = breaker
        self.in_flight = 0
        self.latency: float | None = None
        self.latency_at = 0.0
        self.probed_down = False
        self.failed_opens = 0
        """Breaker openings since the endpoint last served a successful call (eviction)."""
        self.successes = 0

    @property
    def key(self) -> str:
        return self.endpoint.key

    def observe_latency(self, seconds: float, now: float, decay: float) -> None:
        previous = self.latency
        if previous is None:
            self.latency = seconds
        else:
            weight = 1.0 - math.exp(-max(now - self.latency_at, 0.0) / decay) if decay > 0 else 1.0
            # Never let a sample count for less than a small share, or a hot endpoint's
            # average would freeze when samples arrive at the same instant.
            weight = max(weight, 0.1)
            self.latency = previous + weight * (seconds - previous)
        self.latency_at = now

    def __repr__(self) -> str:
        return f"PoolMember({self.key}, in_flight={self.in_flight}, down={self.probed_down})"


class Selection(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_IN_FLIGHT = "least_in_flight"
    LATENCY_WEIGHTED = "latency_weighted"


class Selector(Protocol):
    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember: ...


class RoundRobin:
    """Rotates through the candidates; skipped (open) endpoints do not stall the rotation."""

    __slots__ = ("_cursor",)

    def __init__(self) -> None:
        self._cursor = 0

    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember:
        index = self._cursor % len(candidates)
        self._cursor = index + 1
        return candidates[index]


class LeastInFlight:
    """The candidate with the fewest calls in flight; ties rotate so load still spreads."""

    __slots__ = ("_cursor",)

    def __init__(self) -> None:
        self._cursor = 0

    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember:
        n = len(candidates)
        start = self._cursor % n
        self._cursor = start + 1
        best = candidates[start]
        for i in range(1, n):
            member = candidates[(start + i) % n]
            if member.in_flight < best.in_flight:
                best = member
        return best


class LatencyWeighted:
    """Random choice weighted by ``1 / (latency * (in_flight + 1))`` (peak-EWMA flavour).

    An endpoint with no sample yet gets the best known latency, so new or recovered
    endpoints are tried rather than starved.
    """

    __slots__ = ("_random",)

    def __init__(self, random: Callable[[], float]) -> None:
        self._random = random

    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember:
        known = [m.latency for m in candidates if m.latency is not None]
        default = min(known) if known else 1.0
        weights = []
        total = 0.0
        for member in candidates:
            latency = member.latency if member.latency is not None else default
            weight = 1.0 / (max(latency, 1e-6) * (member.in_flight + 1))
            weights.append(weight)
            total += weight
        pick = self._random() * total
        for member, weight in zip(candidates, weights, strict=True):
            pick -= weight
            if pick < 0:
                return member
        return candidates[-1]


def make_selector(selection: Selection, random: Callable[[], float]) -> Selector:
    if selection is Selection.ROUND_ROBIN:
        return RoundRobin()
    if selection is Selection.LEAST_IN_FLIGHT:
        return LeastInFlight()
    return LatencyWeighted(random)


_OWNER = "EndpointPoolOptions"


class AllOpenPolicy(StrEnum):
    """What a call does when no endpoint admits it.

    ``REJECT`` fails at once with :class:`NoHealthyEndpointError` carrying the earliest
    ``retry_after`` (unlike LiteLLM's bare "no deployments available"); ``WAIT`` sleeps until
    the first breaker half-opens when that is within ``max_wait``, and rejects otherwise.
    """

    REJECT = "reject"
    WAIT = "wait"


def _default_breaker() -> CircuitBreakerOptions:
    return CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=4, break_duration=5.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPoolOptions:
    """How a pool picks endpoints and when it takes them out of rotation.

    * ``breaker``: options of the circuit each endpoint gets (its own window and probes).
    * ``when_all_open`` / ``max_wait``: see :class:`AllOpenPolicy`.
    * ``refresh_interval``: resolution cache TTL; ``retry_interval``: how soon a failed
      resolution is retried (recovery is noticed this fast); ``max_stale``: how long the
      last-known-good set may serve after resolution started failing; ``resolve_timeout``:
      a resolution (DNS, discovery) still running after this counts as failed, so a hanging
      resolver never holds calls up for longer.
    * ``evict_after_opens``: an endpoint whose breaker opened this many times without one
      success in between leaves the pool for ``eviction_duration`` (``None``: never evict).
    * ``discovery_flag``: the dependency name marked ``stale_endpoints`` in the degradation.
    """

    selection: Selection = Selection.ROUND_ROBIN
    breaker: CircuitBreakerOptions = field(default_factory=_default_breaker)
    when_all_open: AllOpenPolicy = AllOpenPolicy.REJECT
    max_wait: Seconds = 5.0
    latency_decay: Seconds = 10.0
    sticky_capacity: int = 10_000
    refresh_interval: Seconds = 30.0
    retry_interval: Seconds = 5.0
    max_stale: Seconds = 300.0
    resolve_timeout: Seconds = 2.0
    evict_after_opens: int | None = 5
    eviction_duration: Seconds = 300.0
    discovery_flag: str = "discovery"

    def __post_init__(self) -> None:
        o = _OWNER
        try:
            set_field(self, "selection", Selection(self.selection))
        except ValueError:
            raise InvalidOptionsError(o, "selection", f"unknown: {self.selection!r}") from None
        try:
            set_field(self, "when_all_open", AllOpenPolicy(self.when_all_open))
        except ValueError:
            raise InvalidOptionsError(
                o, "when_all_open", f"must be 'reject' or 'wait', got {self.when_all_open!r}"
            ) from None
        if not isinstance(self.breaker, CircuitBreakerOptions):
            raise InvalidOptionsError(o, "breaker", "must be a CircuitBreakerOptions")
        set_field(self, "max_wait", duration(o, "max_wait", self.max_wait, allow_zero=True))
        for name in (
            "latency_decay",
            "refresh_interval",
            "retry_interval",
            "max_stale",
            "resolve_timeout",
        ):
            set_field(self, name, duration(o, name, getattr(self, name)))
        set_field(
            self, "eviction_duration", duration(o, "eviction_duration", self.eviction_duration)
        )
        integer(o, "sticky_capacity", self.sticky_capacity, minimum=0)
        if self.evict_after_opens is not None:
            integer(o, "evict_after_opens", self.evict_after_opens, minimum=1)
        if not self.discovery_flag:
            raise InvalidOptionsError(o, "discovery_flag", "must be a non-empty name")
