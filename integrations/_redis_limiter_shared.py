"""Redis plumbing of :class:`RedisRateLimiter`: the script step and shared pauses."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.rate_limiter import TokenBucketLimiter
from netra_resilience.sessions import BackendGate
from netra_resilience.validation import Seconds, to_seconds


class SharedBucketSteps:
    """The Redis half of :class:`RedisRateLimiter` (whose ``__init__`` sets these)."""

    client: Redis
    key: str
    dependency: str
    local: TokenBucketLimiter
    gate: BackendGate
    _clock: Clock
    _redis_time: bool
    _interval: float
    _burst_time: float
    _script: AsyncScript
    _paused_until: float
    _unsent_pause: float
    _tasks: set[asyncio.Task[None]]

    async def _ping(self) -> None:
        await self.client.ping()

    async def _call(self, op: str, amount: float, max_wait: float) -> tuple[bool, float, float]:
        now = "" if self._redis_time else repr(self._clock.now().timestamp())
        args = [op, now, repr(self._interval), repr(self._burst_time), repr(amount), repr(max_wait)]
        granted, wait, paused = await self._script(keys=[self.key], args=args)
        return bool(granted), float(wait), float(paused)

    def _mark(self) -> None:
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, DegradationReason.FALLBACK_MEMORY)

    def pause(self, seconds: Seconds) -> None:
        """Pause every process (an upstream 429): locally at once, in Redis in the background."""
        pause = to_seconds(seconds)
        if not pause > 0:
            return
        self.local.pause(pause)
        self._paused_until = max(self._paused_until, self._clock.monotonic() + pause)
        self._unsent_pause = max(self._unsent_pause, self._clock.now().timestamp() + pause)
        if self.gate.available:
            self._spawn(self._send_pause())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_pause(self) -> None:
        remaining = self._unsent_pause - self._clock.now().timestamp()
        if remaining <= 0:
            return
        try:
            await self.gate.call(functools.partial(self._call, "pause", remaining, 0.0))
        except Exception:
            return  # sent after recovery
        self._unsent_pause = 0.0

    def _on_recovered(self) -> None:
        if self._unsent_pause:
            self._spawn(self._send_pause())

    async def drain(self) -> None:
        """Wait until background Redis writes (shared pauses) have finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop background work (the client belongs to the caller)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gate.aclose()
