"""Redis steps of :class:`RedisCircuitStateStore`, its local fallback, and the resync."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from netra_resilience.circuit_breaker import (
    CircuitPolicy,
    CircuitState,
    InMemoryCircuitStateStore,
)
from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.integrations._redis_breaker_codec import script_args
from netra_resilience.sessions import BackendGate

_ISOLATED = CircuitState.ISOLATED
_OPEN = CircuitState.OPEN


class RedisBreakerSteps:
    """The plumbing half of :class:`RedisCircuitStateStore` (whose ``__init__`` sets these)."""

    client: Redis
    prefix: str
    dependency: str
    gate: BackendGate
    _clock: Clock | None
    _ttl: int
    _script: AsyncScript
    _local: InMemoryCircuitStateStore
    _local_keys: dict[str, CircuitPolicy]
    _resync: asyncio.Task[None] | None

    async def _ping(self) -> None:
        await self.client.ping()

    async def _run(self, op: str, key: str, policy: CircuitPolicy, *args: Any) -> list[Any]:
        tag = f"{{{self.prefix}{key}}}"
        now = "" if self._clock is None else repr(self._clock.now().timestamp())
        argv = script_args(op, now, policy, self._ttl, *args)
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

    def _go_local(self, key: str, policy: CircuitPolicy) -> None:
        self._local_keys[key] = policy
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, DegradationReason.FALLBACK_MEMORY)

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
