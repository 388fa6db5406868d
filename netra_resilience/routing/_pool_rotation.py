"""``PoolRotation``: membership views and picking the member the next call goes to."""

from __future__ import annotations

from collections import OrderedDict

from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.routing._breaker import admits
from netra_resilience.routing._endpoint import NoHealthyEndpointError
from netra_resilience.routing._member import PoolMember
from netra_resilience.routing._membership import ChangeListener, Membership
from netra_resilience.routing._options import EndpointPoolOptions
from netra_resilience.routing._resolution import ResolutionCache
from netra_resilience.routing._selection import Selector


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
