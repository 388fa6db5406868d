"""``EndpointPool``: health-aware selection over a resolved set of endpoints."""

from __future__ import annotations

import random as _random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..context import ResilienceContext, current_context
from ..degradation import DegradationReason
from ..exceptions import BrokenCircuitError
from ..outcome import Outcome
from ..telemetry import TelemetryListener
from ._breaker import admits
from ._endpoint import Endpoint, NoHealthyEndpointError
from ._member import PoolMember
from ._membership import ChangeListener, Membership
from ._options import AllOpenPolicy, EndpointPoolOptions
from ._resolution import ResolutionCache
from ._selection import make_selector
from ._sources import EndpointSource, StaticEndpoints

T = TypeVar("T")


async def _run(context: ResilienceContext, state: Any) -> Outcome[Any]:
    fn, endpoint = state
    try:
        return Outcome(await fn(endpoint), None)
    except Exception as exc:
        return Outcome(None, exc)


class EndpointPool:
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
        )
        self._members = Membership(name, opts, clock, rnd, telemetry)
        self._generation = -1
        self._selector = make_selector(opts.selection, rnd)
        self._sticky: OrderedDict[str, str] = OrderedDict()
        self._decay = float(opts.latency_decay)  # type: ignore[arg-type]
        self._max_wait = float(opts.max_wait)  # type: ignore[arg-type]
        self._wait = opts.when_all_open is AllOpenPolicy.WAIT

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
            if exc is None or not self.options.breaker.should_handle(outcome):
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
