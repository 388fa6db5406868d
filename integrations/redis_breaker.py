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
import functools
from typing import Any

from redis.asyncio import Redis

from netra_resilience._types import Seconds
from netra_resilience.circuit_breaker import (
    CallReport,
    CircuitPolicy,
    CircuitSnapshot,
    CircuitState,
    CircuitStateChange,
    HealthInfo,
    InMemoryCircuitStateStore,
    Permit,
)
from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.sessions import BackendGate

from ._redis_breaker_lua import SCRIPT

__all__ = ["RedisCircuitStateStore"]

_ISOLATED = CircuitState.ISOLATED
_OPEN = CircuitState.OPEN


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    text = _text(value)
    return float(text) if text else None


def _health(tp: Any, fl: Any, sl: Any) -> HealthInfo:
    return HealthInfo.of(int(float(_text(tp))), int(float(_text(fl))), int(float(_text(sl))))


def _local_epoch(epoch: int) -> int:
    """Permits from the local fallback carry negative epochs, so ``record`` routes them back."""
    return -1 - epoch


class RedisCircuitStateStore:
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

    # -- Redis steps --------------------------------------------------------------------
    async def _ping(self) -> None:
        await self.client.ping()

    async def _run(self, op: str, key: str, policy: CircuitPolicy, *args: Any) -> list[Any]:
        tag = f"{{{self.prefix}{key}}}"
        now = "" if self._clock is None else repr(self._clock.now().timestamp())
        argv = [
            op,
            now,
            repr(policy.failure_ratio),
            policy.effective_minimum_throughput,
            repr(policy.sampling_duration),
            policy.window,
            policy.window_size,
            repr(policy.slow_call_ratio),
            repr(policy.break_duration),
            policy.permitted_calls_in_half_open,
            repr(policy.half_open_max_wait),
            self._ttl,
            *args,
        ]
        result: list[Any] = await self._script(keys=[f"{tag}:s", f"{tag}:r"], args=argv)
        return result

    async def _step(self, op: str, key: str, policy: CircuitPolicy, *args: Any) -> list[Any] | None:
        """The Redis step, or ``None`` when Redis is down (then the caller goes local)."""
        if not self.gate.allows():
            return None
        try:
            return await self.gate.call(functools.partial(self._run, op, key, policy, *args))
        except Exception:
            return None

    def _changes(self, key: str, raw: list[Any]) -> tuple[CircuitStateChange, ...]:
        return tuple(
            CircuitStateChange(
                key,
                CircuitState(_text(old)),
                CircuitState(_text(new)),
                _text(reason),
                _health(tp, fl, sl),
                int(epoch),
                _float(duration),
                int(_text(attempts)),
                _text(failure) or None,
            )
            for old, new, reason, tp, fl, sl, epoch, duration, attempts, failure in raw
        )

    def _go_local(self, key: str, policy: CircuitPolicy) -> None:
        self._local_keys[key] = policy
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, DegradationReason.FALLBACK_MEMORY)

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
                _local_epoch(permit.epoch),
                permit.retry_after,
                permit.changes,
            )
        admitted, state, epoch, retry_after, changes = raw
        return Permit(
            bool(admitted),
            CircuitState(_text(state)),
            int(epoch),
            _float(retry_after),
            self._changes(key, changes),
        )

    async def record(
        self, key: str, policy: CircuitPolicy, permit: Permit, report: CallReport
    ) -> tuple[CircuitStateChange, ...]:
        if permit.epoch < 0:  # admitted by the local fallback
            local = Permit(permit.admitted, permit.state, _local_epoch(permit.epoch))
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
            return self._changes(key, raw[4])
        # Redis went away during the call: count it in the local circuit instead.
        self._go_local(key, policy)
        local = await self._local.acquire(key, policy)
        if not local.admitted:
            return local.changes
        return local.changes + await self._local.record(key, policy, local, report)

    async def set_break(self, key: str, epoch: int, seconds: float) -> bool:
        if epoch < 0:
            return await self._local.set_break(key, _local_epoch(epoch), seconds)
        policy = self._policies.get(key, CircuitPolicy())
        raw = await self._step("set_break", key, policy, epoch, repr(seconds))
        return raw is not None and bool(raw[0])

    async def isolate(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        raw = await self._step("isolate", key, policy)
        if raw is None:  # isolated here now, and in Redis once it is back (resync)
            self._go_local(key, policy)
            return await self._local.isolate(key, policy)
        return self._changes(key, raw[4])

    async def close(self, key: str, policy: CircuitPolicy) -> tuple[CircuitStateChange, ...]:
        local = await self._local.close(key, policy) if key in self._local else ()
        raw = await self._step("close", key, policy)
        if raw is None:
            self._go_local(key, policy)
            return local
        return self._changes(key, raw[4])

    async def snapshot(self, key: str, policy: CircuitPolicy) -> CircuitSnapshot:
        raw = await self._step("snapshot", key, policy)
        if raw is None:
            return await self._local.snapshot(key, policy)
        _, state, _, retry_after, _, tp, fl, sl, failure = raw
        return CircuitSnapshot(
            CircuitState(_text(state)),
            _float(retry_after),
            _health(tp, fl, sl),
            _text(failure) or None,
        )

    # -- resync after a Redis outage ----------------------------------------------------
    def _on_recovered(self) -> None:
        if self._local_keys and self._resync is None:
            self._resync = asyncio.get_running_loop().create_task(self.resync())

    async def resync(self) -> None:
        """Merge circuits that opened or were isolated locally into Redis; drop local state."""
        try:
            local, keys = self._local, self._local_keys
            self._local, self._local_keys = InMemoryCircuitStateStore(clock=self._clock), {}
            for key, policy in keys.items():
                snap = await local.snapshot(key, policy)
                if snap.state is _ISOLATED:
                    await self._step("merge", key, policy, "isolated", "0", "")
                elif snap.state is _OPEN and snap.retry_after:
                    remaining = repr(snap.retry_after)
                    failure = snap.last_failure_type or ""
                    await self._step("merge", key, policy, "open", remaining, failure)
        finally:
            self._resync = None

    async def wait_resync(self) -> None:
        """Wait for a resync started by Redis coming back, if one is running."""
        task = self._resync
        if task is not None:
            await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop the background probe and resync (the client belongs to the caller)."""
        task = self._resync
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.gate.aclose()
