"""Pool membership: syncing with resolution, eviction, probe-driven rotation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from netra_resilience.circuit_breaker import CircuitState, CircuitStateChange
from netra_resilience.clock import Clock
from netra_resilience.routing._breaker import build_breaker
from netra_resilience.routing._endpoint import Endpoint
from netra_resilience.routing._member import PoolMember
from netra_resilience.routing._options import EndpointPoolOptions
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
