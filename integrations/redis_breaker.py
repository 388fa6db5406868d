"""``RedisCircuitStateStore``: one circuit per key across every process, in Redis.

    store = RedisCircuitStateStore(redis_client("redis://cache:6379/0"))
    CircuitBreakerOptions(store=store, ...)   # same pipeline name in every replica = one circuit

Each breaker step is one Lua script (atomic): shared state, window counts, global half-open
probe slots, epochs. Redis being down must not become an outage of the dependency the breaker
protects, nor slow it down: every step is bounded by ``timeout`` behind the store's own
:class:`~netra_resilience.sessions.BackendGate`, and while Redis is unreachable the store
keeps a *local* circuit per key (:class:`InMemoryCircuitStateStore`), so each process still
breaks on its own, marking ``redis=fallback_memory``. When Redis answers again, circuits that
opened (or were isolated) locally are merged into the shared state and the local ones are
dropped.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from netra_resilience.circuit_breaker import (
    CallReport,
    CircuitPolicy,
    CircuitSnapshot,
    CircuitStateChange,
    InMemoryCircuitStateStore,
    Permit,
)
from netra_resilience.clock import Clock
from netra_resilience.integrations._redis_breaker_codec import (
    decode_changes,
    decode_permit,
    decode_snapshot,
    local_epoch,
)
from netra_resilience.integrations._redis_breaker_lua import SCRIPT
from netra_resilience.integrations._redis_breaker_steps import RedisBreakerSteps
from netra_resilience.sessions import BackendGate
from netra_resilience.validation import Seconds

__all__ = ["RedisCircuitStateStore"]


class RedisCircuitStateStore(RedisBreakerSteps):
    """A :class:`~netra_resilience.circuit_breaker.CircuitStateStore` on Redis.

    * ``prefix``: key prefix; a circuit lives under ``{prefix<key>}:s`` (and ``:r`` for a
      count window), hash-tagged for Redis Cluster.
    * ``clock``: ``None`` uses Redis ``TIME`` (one clock for every process: recommended); a
      clock's wall time makes steps deterministic in tests.
    * ``timeout`` / ``retry_interval``: bound on each Redis step, and how often to probe
      Redis while it is down (in the background; no call waits for it).
    * ``ttl``: an idle circuit is forgotten (closed) after this long.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "netra:circuit:",
        clock: Clock | None = None,
        timeout: Seconds = 0.1,
        retry_interval: Seconds = 1.0,
        ttl: int = 86_400,
        dependency: str = "redis",
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.dependency = dependency
        self._clock = clock
        self._ttl = ttl
        self._script = client.register_script(SCRIPT)
        self._local = InMemoryCircuitStateStore(clock=clock)
        self._local_keys: dict[str, CircuitPolicy] = {}
        self._policies: dict[str, CircuitPolicy] = {}  # for set_break, which gets none
        self._resync: asyncio.Task[None] | None = None
        self.gate = BackendGate(
            self._ping,
            name=dependency,
            clock=clock,
            timeout=timeout,
            retry_interval=retry_interval,
            on_recovered=self._on_recovered,
        )

    # -- the CircuitStateStore protocol -------------------------------------------------
    async def acquire(self, key: str, policy: CircuitPolicy) -> Permit:
        self._policies[key] = policy
        raw = await self._step("acquire", key, policy)
        if raw is None:
            self._go_local(key, policy)
            permit = await self._local.acquire(key, policy)
            return Permit(
                permit.admitted,
                permit.state,
                local_epoch(permit.epoch),
                permit.retry_after,
                permit.changes,
            )
        return decode_permit(key, raw)

    async def record(
        self, key: str, policy: CircuitPolicy, permit: Permit, report: CallReport
    ) -> tuple[CircuitStateChange, ...]:
        if permit.epoch < 0:  # admitted by the local fallback
            local = Permit(permit.admitted, permit.state, local_epoch(permit.epoch))
            return await self._local.record(key, policy, local, report)
        raw = await self._step(
            "record",
            key,
            policy,
            permit.epoch,
            int(report.failed),
            int(report.slow),
            int(report.abandoned),
            repr(report.break_duration),
            report.failure_type or "",
        )
        if raw is not None:
            return decode_changes(key, raw[4])
        # Redis went away during the call: count it in the local circuit instead.
        self._go_local(key, policy)
        local = await self._local.acquire(key, policy)
        if not local.admitted:
            return local.changes
        return local.changes + await self._local.record(key, policy, local, report)

    async def set_break(self, key: str, epoch: int, seconds: float) -> bool:
        if epoch < 0:
            return await self._local.set_break(key, local_epoch(epoch), seconds)
        policy = self._policies.get(key, CircuitPolicy())
        raw = await self._step("set_break", key, policy, epoch, repr(seconds))
        return raw is not None and bool(raw[0])

    async def isolate(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        raw = await self._step("isolate", key, policy)
        if raw is None:  # isolated here now, and in Redis once it is back (resync)
            self._go_local(key, policy)
            return await self._local.isolate(key, policy)
        return decode_changes(key, raw[4])

    async def close(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        local = await self._local.close(key, policy) if key in self._local else ()
        raw = await self._step("close", key, policy)
        if raw is None:
            self._go_local(key, policy)
            return local
        return decode_changes(key, raw[4])

    async def snapshot(self, key: str, policy: CircuitPolicy) -> CircuitSnapshot:
        raw = await self._step("snapshot", key, policy)
        if raw is None:
            return await self._local.snapshot(key, policy)
        return decode_snapshot(raw)
