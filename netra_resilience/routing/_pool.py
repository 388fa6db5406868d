"""``EndpointPool``: health-aware selection over a resolved set of endpoints."""

from __future__ import annotations

import random as _random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.exceptions import BrokenCircuitError
from netra_resilience.outcome import Outcome
from netra_resilience.routing._endpoint import Endpoint, NoHealthyEndpointError
from netra_resilience.routing._membership import Membership
from netra_resilience.routing._options import AllOpenPolicy, EndpointPoolOptions
from netra_resilience.routing._pool_rotation import PoolRotation
from netra_resilience.routing._resolution import ResolutionCache
from netra_resilience.routing._selection import make_selector
from netra_resilience.routing._sources import EndpointSource, StaticEndpoints
from netra_resilience.telemetry import TelemetryListener

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
