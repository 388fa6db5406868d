"""``RedisRateLimiter``: one GCRA token bucket shared by every process, in Redis.

    limiter = RedisRateLimiter(redis, breaker=redis_breaker(redis), key="search-api",
                               rate=50, burst=10, replicas=4, max_wait=2.0)
    RateLimiterOptions(limiter=limiter)   # every replica draws from the same 50/s

The bucket is one number per key, the time at which it is (or will be) empty, updated by one
Lua script per acquisition, so the limit holds across processes. A caller allowed to wait
*reserves* its permits in that same step and then sleeps until their time: waiters are served
in reservation order, with no polling and no retry storm. (A reservation abandoned by a
cancelled caller is not given back: the limit errs on the safe side.) An upstream 429
(:meth:`pause`) empties the bucket for everyone until the pause ends.

When Redis is down (each step bounded by the timeout of the Redis server's shared
:class:`~netra_resilience.circuit_breaker.BackendBreaker`, then skipped while it is open), each
process falls back to a local :class:`~netra_resilience.rate_limiter.TokenBucketLimiter` with
``1/replicas`` of the rate and burst, marking ``<breaker name>=fallback_memory``.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from netra_resilience.circuit_breaker import BackendBreaker, CircuitState, CircuitStateChange
from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import RateLimitRejectedError
from netra_resilience.integrations.redis._client import checked_breaker
from netra_resilience.rate_limiter import TokenBucketLimiter
from netra_resilience.validation import Seconds, duration, integer, number, to_seconds

# KEYS[1] bucket. ARGV: op ("take"/"pause"), now ('' = Redis TIME), interval, burst_time,
# permits | pause seconds, max_wait. Returns {granted, wait, paused_for} (seconds as text).
SCRIPT = r"""
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function f(x) return string.format('%.17g', x) end
local interval, burst_time = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'e', 'p')
local empty_at = tonumber(state[1]) or (now - burst_time)
local paused = tonumber(state[2]) or 0
if ARGV[1] == 'pause' then
  local untl = now + tonumber(ARGV[5])
  if untl > paused then paused = untl end
  if untl > empty_at then empty_at = untl end
  redis.call('HSET', KEYS[1], 'e', f(empty_at), 'p', f(paused))
  redis.call('PEXPIRE', KEYS[1], math.ceil((empty_at - now + burst_time) * 1000) + 1000)
  return {1, '0', f(paused - now)}
end
local base = math.max(empty_at, now - burst_time)
local taken = base + tonumber(ARGV[5]) * interval
local wait = taken - now
if wait <= 0.000001 then wait = 0 end
local granted = 0
if wait <= tonumber(ARGV[6]) + 0.000001 then
  granted = 1
  redis.call('HSET', KEYS[1], 'e', f(taken))
  redis.call('PEXPIRE', KEYS[1], math.ceil((taken - now + burst_time) * 1000) + 1000)
end
return {granted, f(wait), f(math.max(paused - now, 0))}
"""


class SharedBucketSteps:
    """The Redis half of :class:`RedisRateLimiter` (whose ``__init__`` sets these)."""

    client: Redis
    key: str
    local: TokenBucketLimiter
    breaker: BackendBreaker
    _clock: Clock
    _redis_time: bool
    _interval: float
    _burst_time: float
    _script: AsyncScript
    _paused_until: float
    _unsent_pause: float
    _tasks: set[asyncio.Task[None]]
    _unsubscribe: Callable[[], None]

    async def _call(self, op: str, amount: float, max_wait: float) -> tuple[bool, float, float]:
        now = "" if self._redis_time else repr(self._clock.now().timestamp())
        args = [op, now, repr(self._interval), repr(self._burst_time), repr(amount), repr(max_wait)]
        granted, wait, paused = await self._script(keys=[self.key], args=args)
        return bool(granted), float(wait), float(paused)

    def _mark(self) -> None:
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.breaker.name, DegradationReason.FALLBACK_MEMORY)

    def pause(self, seconds: Seconds) -> None:
        """Pause every process (an upstream 429): locally at once, in Redis in the background."""
        pause = to_seconds(seconds)
        if not pause > 0:
            return
        self.local.pause(pause)
        self._paused_until = max(self._paused_until, self._clock.monotonic() + pause)
        self._unsent_pause = max(self._unsent_pause, self._clock.now().timestamp() + pause)
        if self.breaker.available:
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
            await self.breaker.call(functools.partial(self._call, "pause", remaining, 0.0))
        except Exception:
            return  # sent after recovery
        self._unsent_pause = 0.0

    def _on_breaker(self, _old: CircuitState, new: CircuitState, _: CircuitStateChange) -> None:
        if new is CircuitState.CLOSED and self._unsent_pause:
            self._spawn(self._send_pause())

    async def drain(self) -> None:
        """Wait until background Redis writes (shared pauses) have finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop background work (the client and the breaker belong to the caller)."""
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


_EPSILON = 1e-6
_REMOTE = 1e-9  # try_acquire's answer while Redis decides: "ask acquire()"


class RedisRateLimiter(SharedBucketSteps):
    """A :class:`~netra_resilience.rate_limiter.RateLimiter` whose bucket lives in Redis.

    ``breaker``: the Redis server's breaker (:func:`redis_breaker`), shared with its other
    users. ``clock`` (default: the breaker's): sleeps and the local fallback use it; its wall
    time is also sent to Redis when ``use_redis_time=False`` (tests with a fake clock). By
    default Redis ``TIME`` is the one clock every process agrees on.
    """

    def __init__(
        self,
        client: Redis,
        *,
        breaker: BackendBreaker,
        key: str,
        rate: float,
        burst: int,
        max_wait: Seconds = 0.0,
        replicas: int = 1,
        prefix: str = "netra:ratelimit:",
        clock: Clock | None = None,
        use_redis_time: bool = True,
    ) -> None:
        owner = type(self).__name__
        self.breaker = breaker = checked_breaker(owner, breaker)
        self._rate = number(owner, "rate", rate)
        self._burst = integer(owner, "burst", burst)
        self._max_wait = duration(owner, "max_wait", max_wait, allow_zero=True)
        self.replicas = integer(owner, "replicas", replicas)
        self.client = client
        self.key = f"{prefix}{key}"
        self._clock = clock or breaker.clock
        self._redis_time = use_redis_time
        self._interval = 1.0 / self._rate
        self._burst_time = self._burst / self._rate
        self._script = client.register_script(SCRIPT)
        self.local = TokenBucketLimiter(
            rate=self._rate / self.replicas,
            burst=max(1, self._burst // self.replicas),
            clock=self._clock,
            max_wait=self._max_wait,
        )
        self._paused_until = -math.inf  # monotonic, as last learned from Redis
        self._unsent_pause = 0.0  # wall time of a pause Redis has not heard of yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe = breaker.add_state_listener(self._on_breaker)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def paused_until(self) -> float | None:
        until = max(self._paused_until, self.local.paused_until or -math.inf)
        return until if until > self._clock.monotonic() else None

    def try_acquire(self, permits: int = 1) -> float:
        if permits > self._burst:
            return math.inf
        if self.breaker.allows():
            return _REMOTE if permits > 0 else 0.0
        self._mark()
        return self.local.try_acquire(permits)

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        limit = self._max_wait if max_wait is None else to_seconds(max_wait)
        if permits > self._burst:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permits exceed the burst of {self._burst}; "
                "such a request can never be admitted"
            )
        if permits <= 0:
            return
        if self.breaker.allows():
            try:
                call = functools.partial(self._call, "take", permits, limit)
                granted, wait, paused = await self.breaker.call(call)
            except Exception:
                pass  # Redis failed now: this call already goes local
            else:
                if paused > 0:
                    self._paused_until = self._clock.monotonic() + paused
                if not granted:
                    raise RateLimitRejectedError(
                        f"rate limit: {permits} permit(s) not available within {limit:g}s",
                        retry_after=wait,
                    )
                if wait > _EPSILON:
                    await self._clock.sleep(wait)  # our reserved slot
                return
        self._mark()
        await self.local.acquire(permits, max_wait=limit)

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self.key!r}, rate={self._rate:g}, burst={self._burst})"
