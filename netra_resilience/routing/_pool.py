"""Endpoint pools: resolution (static, DNS, discovery) with last-known-good, membership,
rotation and the pool itself.
"""

from __future__ import annotations

import asyncio
import inspect
import random as _random
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from netra_resilience.circuit_breaker import CircuitState, CircuitStateChange
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import BrokenCircuitError
from netra_resilience.outcome import Outcome
from netra_resilience.routing._endpoint import (
    AllOpenPolicy,
    Endpoint,
    EndpointPoolOptions,
    EndpointResolutionError,
    NoHealthyEndpointError,
    PoolMember,
    Selector,
    admits,
    build_breaker,
    make_selector,
)
from netra_resilience.telemetry import TelemetryListener

ChangeListener = Callable[[Endpoint, CircuitStateChange], None]


class Membership:
    """The pool's members by key, in a list for selection; evicted keys with their expiry."""

    def __init__(
        self,
        name: str,
        options: EndpointPoolOptions,
        clock: Clock,
        random: Callable[[], float],
        telemetry: TelemetryListener | None,
    ) -> None:
        self._name = name
        self._options = options
        self._clock = clock
        self._random = random
        self._telemetry = telemetry
        self.by_key: dict[str, PoolMember] = {}
        self.members: list[PoolMember] = []
        self.evicted: dict[str, float] = {}
        self.listeners: list[ChangeListener] = []

    def sync(self, endpoints: Sequence[Endpoint]) -> None:
        """Adopt a fresh resolution: keep known endpoints' state, add new, drop gone."""
        now = self._clock.monotonic()
        # Forget expired evictions (also of endpoints that no longer resolve at all).
        self.evicted = {key: until for key, until in self.evicted.items() if now < until}
        fresh: dict[str, PoolMember] = {}
        for endpoint in endpoints:
            until = self.evicted.get(endpoint.key)
            if until is not None and now < until:
                continue
            self.evicted.pop(endpoint.key, None)
            fresh[endpoint.key] = self._member(endpoint)
        if not fresh:  # everything evicted: trying a bad endpoint beats failing every call
            fresh = {e.key: self._member(e) for e in endpoints}
        self.by_key = fresh
        self.members = list(fresh.values())

    def _member(self, endpoint: Endpoint) -> PoolMember:
        member = self.by_key.get(endpoint.key)
        if member is not None:
            member.endpoint = endpoint
            return member
        breaker = build_breaker(
            self._options.breaker,
            name=f"{self._name}:{endpoint.key}",
            clock=self._clock,
            random=self._random,
            listener=self._telemetry,
        )
        member = PoolMember(endpoint, breaker)
        breaker.add_state_listener(lambda _old, _new, change: self._on_change(member, change))
        return member

    def _on_change(self, member: PoolMember, change: CircuitStateChange) -> None:
        if change.new_state is CircuitState.OPEN and change.reason != "probe_abandoned":
            member.failed_opens += 1
            limit = self._options.evict_after_opens
            if limit is not None and member.failed_opens >= limit:
                self.evict(member.key)
        for listener in tuple(self.listeners):
            try:
                listener(member.endpoint, change)
            except Exception:
                continue

    def evict(self, key: str) -> bool:
        """Take ``key`` out for ``eviction_duration`` (never the last member)."""
        if key not in self.by_key or len(self.by_key) <= 1:
            return False
        seconds = float(self._options.eviction_duration)  # type: ignore[arg-type]
        self.evicted[key] = self._clock.monotonic() + seconds
        del self.by_key[key]
        self.members = list(self.by_key.values())
        return True


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolver(host, port) -> addresses``; the default asks ``loop.getaddrinfo``."""

DiscoveryResult = Iterable[Endpoint | str]
Discovery = Callable[[], DiscoveryResult | Awaitable[DiscoveryResult]]


@runtime_checkable
class EndpointSource(Protocol):
    """Answers the current endpoint set; raises (any exception) when it cannot."""

    async def resolve(self) -> Sequence[Endpoint]: ...


def _coerce(items: Iterable[Endpoint | str]) -> list[Endpoint]:
    return [item if isinstance(item, Endpoint) else Endpoint.parse(item) for item in items]


class StaticEndpoints:
    """A fixed list (``"http://10.0.0.1:8000"`` strings or :class:`Endpoint` objects)."""

    __slots__ = ("_endpoints",)

    def __init__(self, endpoints: Iterable[Endpoint | str]) -> None:
        self._endpoints = tuple(_coerce(endpoints))
        if not self._endpoints:
            raise ValueError("StaticEndpoints needs at least one endpoint")

    async def resolve(self) -> Sequence[Endpoint]:
        return self._endpoints


async def getaddrinfo_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve with the event loop's (thread-pooled) ``getaddrinfo``; unique, in answer order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DnsEndpoints:
    """One endpoint per address ``host`` resolves to.

    Each endpoint remembers the name in ``meta["hostname"]`` so the routing transport keeps
    the ``Host`` header and TLS server name of the original URL while connecting by address.
    """

    __slots__ = ("_host", "_port", "_resolver", "_scheme")

    def __init__(
        self, host: str, port: int, *, scheme: str = "http", resolver: Resolver | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._scheme = scheme
        self._resolver = resolver or getaddrinfo_resolver

    async def resolve(self) -> Sequence[Endpoint]:
        addresses = await self._resolver(self._host, self._port)
        return [
            Endpoint(address, self._port, self._scheme, {"hostname": self._host})
            for address in addresses
        ]


class DiscoveryEndpoints:
    """The application's own discovery (Consul, Kubernetes API, a config service, ...).

    ``discover()`` may be sync or async and returns endpoints or URL strings.
    """

    __slots__ = ("_discover",)

    def __init__(self, discover: Discovery) -> None:
        if not callable(discover):
            raise TypeError("DiscoveryEndpoints needs a callable")
        self._discover = discover

    async def resolve(self) -> Sequence[Endpoint]:
        answer = self._discover()
        if inspect.isawaitable(answer):
            answer = await answer
        return _coerce(answer)


class ResolutionCache:
    """Resolves at most once per ``refresh_interval``; one resolution at a time.

    On failure (an exception or an empty answer) the last-known-good set keeps serving and
    :attr:`stale` is set, until ``max_stale`` seconds after the last success; after that
    :meth:`endpoints` raises :class:`EndpointResolutionError`. While failing, resolution is
    retried every ``retry_interval``: the first success clears ``stale`` (recovery) and
    replaces the set, so addresses that disappeared from DNS are dropped then.
    """

    __slots__ = (
        "_clock",
        "_endpoints",
        "_inflight",
        "_max_stale",
        "_refresh",
        "_resolved_at",
        "_retry",
        "_source",
        "_timeout",
        "failures",
        "generation",
        "last_error",
        "next_refresh_at",
        "recoveries",
        "stale",
    )

    def __init__(
        self,
        source: EndpointSource,
        *,
        clock: Clock,
        refresh_interval: float,
        retry_interval: float,
        max_stale: float,
        resolve_timeout: float | None = None,
    ) -> None:
        self._source = source
        self._timeout = resolve_timeout
        self._clock = clock
        self._refresh = refresh_interval
        self._retry = retry_interval
        self._max_stale = max_stale
        self._endpoints: tuple[Endpoint, ...] = ()
        self._resolved_at: float | None = None
        self._inflight: asyncio.Future[None] | None = None
        self.next_refresh_at = float("-inf")
        self.generation = 0
        """Bumped whenever a resolution succeeds (the pool re-syncs its members then)."""
        self.stale = False
        self.failures = 0
        self.recoveries = 0
        self.last_error: str | None = None
        """Type name of the last resolution error (never its message)."""

    @property
    def due(self) -> bool:
        return self._clock.monotonic() >= self.next_refresh_at

    async def endpoints(self) -> Sequence[Endpoint]:
        """The current set, refreshing first when due."""
        if self._clock.monotonic() >= self.next_refresh_at:
            await self.refresh()
        return self._current()

    async def refresh(self) -> None:
        inflight = self._inflight
        if inflight is not None:  # single flight: everyone waits for the one resolution
            await asyncio.shield(inflight)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = future
        try:
            await self._resolve()
        finally:
            self._inflight = None
            future.set_result(None)

    async def _resolve(self) -> None:
        try:
            async with self._clock.timeout(self._timeout):  # a hanging resolver is a failure
                answer = tuple(await self._source.resolve())
            if not answer:
                raise EndpointResolutionError("resolution returned no endpoints")
        except Exception as exc:  # resolution failure: keep the last-known-good set
            now = self._clock.monotonic()
            self.failures += 1
            self.last_error = type(exc).__name__
            self.stale = bool(self._endpoints)
            self.next_refresh_at = now + self._retry
            return
        now = self._clock.monotonic()
        if self.stale:
            self.recoveries += 1
        self.stale = False
        self.last_error = None
        self._endpoints = answer
        self._resolved_at = now
        self.next_refresh_at = now + self._refresh
        self.generation += 1

    def _current(self) -> Sequence[Endpoint]:
        resolved = self._resolved_at
        if resolved is None:
            raise EndpointResolutionError(
                f"endpoint resolution failed ({self.last_error}) and nothing is cached"
            )
        if self.stale and self._clock.monotonic() - resolved > self._max_stale:
            raise EndpointResolutionError(
                f"endpoint resolution failing ({self.last_error}); last-known-good set "
                f"is older than max_stale={self._max_stale}s"
            )
        return self._endpoints


class PoolRotation:
    """The selection half of :class:`EndpointPool` (whose ``__init__`` sets these)."""

    name: str
    options: EndpointPoolOptions
    clock: Clock
    resolution: ResolutionCache
    _members: Membership
    _generation: int
    _selector: Selector
    _sticky: OrderedDict[str, str]
    _max_wait: float
    _wait: bool

    # -- membership --------------------------------------------------------------------
    @property
    def members(self) -> list[PoolMember]:
        return list(self._members.members)

    def member(self, key: str) -> PoolMember | None:
        return self._members.by_key.get(key)

    @property
    def evicted(self) -> dict[str, float]:
        """Evicted endpoint keys and the monotonic time until which they stay out."""
        return dict(self._members.evicted)

    def add_listener(self, listener: ChangeListener) -> None:
        """``listener(endpoint, change)`` on every breaker transition of every endpoint."""
        self._members.listeners.append(listener)

    def evict(self, key: str) -> bool:
        return self._members.evict(key)

    def set_down(self, key: str, down: bool) -> None:
        """Take an endpoint out of rotation (a failed probe) or put it back (recovered)."""
        member = self._members.by_key.get(key)
        if member is not None:
            member.probed_down = down

    async def refresh(self) -> None:
        """Resolve now (normally done lazily, when the TTL is due, by the next call)."""
        await self.resolution.refresh()
        self._sync()

    def _sync(self) -> None:
        res = self.resolution
        if res.generation != self._generation:
            self._generation = res.generation
            self._members.sync(res._current())

    # -- selection ---------------------------------------------------------------------
    async def select(
        self, *, sticky_key: str | None = None, context: ResilienceContext | None = None
    ) -> PoolMember:
        """The member the next call goes to (waiting or raising when none admits)."""
        res = self.resolution
        if self.clock.monotonic() >= res.next_refresh_at:
            await self.refresh()
        if res.stale or not self._members.members:
            self._sync()
            res._current()  # raises EndpointResolutionError beyond max_stale
            ctx = context or current_context()
            if ctx is not None:
                ctx.degradation.mark(self.options.discovery_flag, DegradationReason.STALE_ENDPOINTS)
        waited = 0.0
        while True:
            member = self._pick(sticky_key)
            if member is not None:
                return member
            retry_after = self._earliest_retry_after()
            if self._wait and retry_after is not None and waited + retry_after <= self._max_wait:
                waited += retry_after
                await self.clock.sleep(retry_after)
                continue
            ctx = context or current_context()
            if ctx is not None:
                ctx.degradation.mark(self.name, DegradationReason.CIRCUIT_OPEN)
            raise NoHealthyEndpointError(
                f"no healthy endpoint in pool {self.name!r}",
                retry_after=retry_after,
                dependency=self.name,
            )

    def _pick(self, sticky_key: str | None) -> PoolMember | None:
        candidates = [m for m in self._members.members if not m.probed_down and admits(m.breaker)]
        if not candidates:
            return None
        if sticky_key is None:
            return self._selector.choose(candidates)
        sticky = self._sticky
        key = sticky.get(sticky_key)
        if key is not None:
            member = self._members.by_key.get(key)
            if member is not None and member in candidates:
                sticky.move_to_end(sticky_key)
                return member
        chosen = self._selector.choose(candidates)
        sticky[sticky_key] = chosen.key
        sticky.move_to_end(sticky_key)
        while len(sticky) > self.options.sticky_capacity:
            sticky.popitem(last=False)
        return chosen

    def _earliest_retry_after(self) -> float | None:
        waits = [
            wait
            for m in self._members.members
            if not m.probed_down and (wait := m.breaker.retry_after) is not None
        ]
        return min(waits) if waits else None


T = TypeVar("T")


async def _run(context: ResilienceContext, state: Any) -> Outcome[Any]:
    fn, endpoint = state
    try:
        return Outcome(await fn(endpoint), None)
    except Exception as exc:
        return Outcome(None, exc)


class EndpointPool(PoolRotation):
    """Endpoints of one dependency, each with its own breaker, load and latency.

    ``execute(fn)`` runs ``fn(endpoint)`` on an endpoint whose breaker admits the call and
    that is in rotation (chosen by the :class:`Selection`, optionally sticky to a key), through
    that endpoint's breaker. When none admits, it waits up to ``max_wait`` for the first to
    half-open (``WAIT``) or raises :class:`NoHealthyEndpointError` with the earliest
    ``retry_after``. Put it *inside* a retry pipeline: each attempt picks again, so a retry
    goes to another healthy endpoint.
    """

    def __init__(
        self,
        name: str,
        source: EndpointSource | Iterable[Endpoint | str],
        *,
        options: EndpointPoolOptions | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        self.name = name
        self.options = opts = options or EndpointPoolOptions()
        self.clock = clock = clock or SYSTEM_CLOCK
        rnd = random or _random.Random().random
        if not isinstance(source, EndpointSource):
            source = StaticEndpoints(source)
        self.resolution = ResolutionCache(
            source,
            clock=clock,
            refresh_interval=float(opts.refresh_interval),  # type: ignore[arg-type]
            retry_interval=float(opts.retry_interval),  # type: ignore[arg-type]
            max_stale=float(opts.max_stale),  # type: ignore[arg-type]
            resolve_timeout=float(opts.resolve_timeout),  # type: ignore[arg-type]
        )
        self._members = Membership(name, opts, clock, rnd, telemetry)
        self._generation = -1
        self._selector = make_selector(opts.selection, rnd)
        self._sticky: OrderedDict[str, str] = OrderedDict()
        self._decay = float(opts.latency_decay)  # type: ignore[arg-type]
        self._max_wait = float(opts.max_wait)  # type: ignore[arg-type]
        self._wait = opts.when_all_open is AllOpenPolicy.WAIT

    # -- calls -------------------------------------------------------------------------
    async def execute_outcome(
        self,
        fn: Callable[[Endpoint], Awaitable[T]],
        *,
        sticky_key: str | None = None,
        context: ResilienceContext | None = None,
    ) -> Outcome[T]:
        """Like :meth:`execute`, returning the outcome (selection errors still raise)."""
        ctx = context or current_context() or ResilienceContext(self.name)
        for _ in range(len(self._members.members) + 2):
            member = await self.select(sticky_key=sticky_key, context=ctx)
            clock = self.clock
            start = clock.monotonic()
            member.in_flight += 1
            try:
                outcome = await member.breaker.execute(_run, ctx, (fn, member.endpoint))
            finally:
                member.in_flight -= 1
            exc = outcome.exception
            if isinstance(exc, BrokenCircuitError) and exc.dependency == member.breaker.name:
                continue  # lost a half-open probe slot to a concurrent call: pick again
            handles = cast("Callable[[Outcome[Any]], bool]", self.options.breaker.should_handle)
            if exc is None or not handles(outcome):
                now = clock.monotonic()
                member.failed_opens = 0
                member.successes += 1
                member.observe_latency(now - start, now, self._decay)
            return outcome
        raise NoHealthyEndpointError(
            f"no endpoint of pool {self.name!r} admitted the call", dependency=self.name
        )

    async def execute(
        self,
        fn: Callable[[Endpoint], Awaitable[T]],
        *,
        sticky_key: str | None = None,
        context: ResilienceContext | None = None,
    ) -> T:
        """Run ``fn(endpoint)`` on a chosen endpoint, through that endpoint's breaker."""
        outcome = await self.execute_outcome(fn, sticky_key=sticky_key, context=context)
        return outcome.unwrap()
