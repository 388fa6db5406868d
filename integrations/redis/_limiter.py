"""``RedisRateLimiter``: one GCRA token bucket shared by every process, in Redis.

    limiter = RedisRateLimiter(redis, breaker=redis_breaker(redis), key="search-api",
                               rate=50, burst=10, replicas=4, max_wait=2.0)
    RateLimiterOptions(limiter=limiter)   # every replica draws from the same 50/s

The bucket is one number per key, the time at which it is (or will be) empty, updated by one
Lua script per request, so the limit holds across processes. A caller allowed to wait
*reserves* its permits in that same step and then sleeps until their time: waiters are served
in reservation order, with no polling and no retry storm. (A reservation abandoned by a
cancelled caller is not given back: the limit errs on the safe side.) An upstream 429
(:meth:`pause`) empties the bucket for everyone until the pause ends.

**Leases.** So that a busy process is not bound to one round trip per permit, it takes permits
from Redis in batches and hands them out locally (no I/O, no ``await``). A batch is at most
``rate * lease_window / replicas`` permits (and at most ``burst / replicas``), only permits
that are already in the bucket or, for a caller allowed to wait, due within its
``max_wait``; the batch can be used once its last permit is due, and for ``lease_window``
after that. Its size adapts to the process's own demand: it starts at what the first caller
needs, doubles while batches run out before they expire, and falls back to what was used
when one expires half spent. Unused permits of an expired batch go back to the bucket with
the process's next request. At low rates (``rate * lease_window / replicas < 2``) a batch is
one caller's permits: every acquisition is one round trip, exactly as without leases.

The accuracy bound: over any window of ``T`` seconds, all processes together are granted at
most ``rate * T + burst`` permits by the bucket, and leases add at most what the processes
hold at the window's start: ``replicas * lease size <= max(replicas, rate * lease_window)``
(with ``replicas`` the true number of processes). Under saturation every leased permit is
used, so the granted rate stays within that bound of ``rate``; ``lease_window=0`` turns
leases off.

When Redis is down (each step bounded by the timeout of the Redis server's shared
:class:`~netra_resilience.circuit_breaker.BackendBreaker`, then skipped while it is open), each
process falls back to a local :class:`~netra_resilience.rate_limiter.TokenBucketLimiter` with
``1/replicas`` of the rate and burst, marking ``<breaker name>=fallback_memory``.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import deque
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
# permits needed | pause seconds, max_wait, permits wanted (>= needed), permits given back.
# "take" grants the most permits from needed to wanted that are all due within max_wait.
# Returns {granted (0 = refused), wait (for the last granted, or for needed if refused),
# paused_for} (seconds as text).
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
local given = tonumber(ARGV[8]) or 0
if given > 0 then empty_at = math.max(empty_at - given * interval, paused) end
local base = math.max(empty_at, now - burst_time)
local need, max_wait = tonumber(ARGV[5]), tonumber(ARGV[6])
local granted = math.min(tonumber(ARGV[7]) or need,
                         math.floor((now + max_wait + 0.000001 - base) / interval + 0.000001))
local wait
if granted >= need then
  local taken = base + granted * interval
  wait = taken - now
  empty_at = taken
else
  granted = 0
  wait = base + need * interval - now
end
if wait <= 0.000001 then wait = 0 end
if granted > 0 or given > 0 then
  redis.call('HSET', KEYS[1], 'e', f(empty_at))
  redis.call('PEXPIRE', KEYS[1], math.ceil((empty_at - now + burst_time) * 1000) + 1000)
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
    _interval_arg: str
    _burst_time_arg: str
    _script: AsyncScript
    _paused_until: float
    _unsent_pause: float
    _tasks: set[asyncio.Task[None]]
    _unsubscribe: Callable[[], None]

    async def _call(
        self, op: str, amount: float, max_wait: float, wanted: int = 0, given: int = 0
    ) -> tuple[int, float, float]:
        now = "" if self._redis_time else repr(self._clock.now().timestamp())
        args = [
            op,
            now,
            self._interval_arg,
            self._burst_time_arg,
            repr(amount),
            repr(max_wait),
            str(max(wanted, int(amount))),
            str(given),
        ]
        granted, wait, paused = await self._script(keys=[self.key], args=args)
        return int(granted), float(wait), float(paused)

    def _mark(self) -> None:
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.breaker.name, DegradationReason.FALLBACK_MEMORY)

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

    async def _stop(self) -> None:
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


_EPSILON = 1e-6
_REMOTE = 1e-9  # try_acquire's answer while Redis decides: "ask acquire()"


class _Lease:
    """Permits taken from the bucket in one request: ``left`` of ``granted`` not handed out,
    usable from ``ready_at`` (when the last is due) until ``expires_at`` (monotonic)."""

    __slots__ = ("expires_at", "granted", "left", "ready_at")

    def __init__(self, granted: int, left: int, ready_at: float, owner: RedisRateLimiter):
        self.granted = granted
        self.left = left
        self.ready_at = ready_at
        self.expires_at = ready_at + max(owner.lease_window, _EPSILON)


class RedisRateLimiter(SharedBucketSteps):
    """A :class:`~netra_resilience.rate_limiter.RateLimiter` whose bucket lives in Redis.

    ``breaker``: the Redis server's breaker (:func:`redis_breaker`), shared with its other
    users. ``clock`` (default: the breaker's): sleeps, leases and the local fallback use it;
    its wall time is also sent to Redis when ``use_redis_time=False`` (tests with a fake
    clock). By default Redis ``TIME`` is the one clock every process agrees on.
    ``lease_window``: how far ahead of the rate a process may hold permits (see the module
    doc for the bound; 0 = one round trip per acquisition).
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
        lease_window: Seconds = 0.01,
    ) -> None:
        owner = type(self).__name__
        self.breaker = breaker = checked_breaker(owner, breaker)
        self._rate = number(owner, "rate", rate)
        self._burst = integer(owner, "burst", burst)
        self._max_wait = duration(owner, "max_wait", max_wait, allow_zero=True)
        self.replicas = integer(owner, "replicas", replicas)
        self.lease_window = duration(owner, "lease_window", lease_window, allow_zero=True)
        self.client = client
        self.key = f"{prefix}{key}"
        self._clock = clock or breaker.clock
        self._redis_time = use_redis_time
        self._interval = 1.0 / self._rate
        self._burst_time = self._burst / self._rate
        self._interval_arg, self._burst_time_arg = repr(self._interval), repr(self._burst_time)
        self._monotonic = self._clock.monotonic
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
        # A process holds at most two leases (the one in use and the next, asked for ahead
        # while the bucket is saturated): together at most rate * lease_window / replicas.
        ahead = min(self._rate * self.lease_window, float(self._burst)) / (2 * self.replicas)
        self.lease_max = max(1, int(ahead))
        """The most permits one lease may hold."""
        self._lease: _Lease | None = None
        self._next: _Lease | None = None  # asked for ahead, used when _lease is spent
        self._lease_size = 1  # the next lease's size, adapted to demand
        self._unreturned = 0  # permits of retired leases, given back with the next request
        self._leasing: asyncio.Future[None] | None = None  # a lease request in flight
        self._queue: deque[asyncio.Future[None]] = deque()  # callers waiting for its answer
        # The max_wait of the caller who last met a saturated bucket (None: not saturated).
        self._saturated_limit: float | None = None

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

    @property
    def held(self) -> int:
        """Permits of this process's leases not handed out yet."""
        return sum(lease.left for lease in (self._lease, self._next) if lease is not None)

    def pause(self, seconds: Seconds) -> None:
        """Pause every process (an upstream 429): locally at once, in Redis in the background."""
        pause = to_seconds(seconds)
        if not pause > 0:
            return
        self.local.pause(pause)
        self._lease = self._next = None  # their permits came from the bucket the pause empties
        self._saturated_limit = None
        self._paused_until = max(self._paused_until, self._clock.monotonic() + pause)
        self._unsent_pause = max(self._unsent_pause, self._clock.now().timestamp() + pause)
        if self.breaker.available:
            self._spawn(self._send_pause())

    def _from_lease(self, permits: int, limit: float) -> float | None:
        """Take ``permits`` from a lease: the seconds until they are due, or None."""
        now = self._clock.monotonic()
        lease = self._lease
        if lease is None or lease.left < permits or now >= lease.expires_at:
            lease = self._move_on(now)
            if lease is None or lease.left < permits:
                return None
        wait = lease.ready_at - now
        if wait > limit:
            return None
        lease.left -= permits
        return wait if wait > _EPSILON else 0.0

    def _move_on(self, now: float) -> _Lease | None:
        """Retire the current lease (spent, expired or too small) for the next one."""
        self._retire(self._lease, now)
        lease, self._next = self._next, None
        if lease is not None and now >= lease.expires_at:
            self._retire(lease, now)
            lease = None
        self._lease = lease
        if lease is not None and self._saturated_limit is not None:
            self._ask_ahead()  # keep one reservation queued in Redis while saturated
        return lease

    def _retire(self, lease: _Lease | None, now: float) -> None:
        if lease is None:
            return
        if not lease.left:  # used up in time: lease more next time
            self._lease_size = min(self._lease_size * 2, self.lease_max)
        elif now >= lease.expires_at:  # expired half spent: demand is what was used
            self._lease_size = max(1, lease.granted - lease.left)
        self._unreturned += lease.left  # goes back to the bucket with the next request
        lease.left = 0

    def try_acquire(self, permits: int = 1) -> float:
        lease = self._lease  # the hot path, as in acquire()
        if lease is not None and 0 < permits <= lease.left and not self._queue:
            now = self._monotonic()
            if lease.ready_at <= now < lease.expires_at:
                lease.left -= permits
                return 0.0
        if permits > self._burst:
            return math.inf
        if permits <= 0 or self._from_lease(permits, 0.0) == 0.0:
            return 0.0
        if self.breaker.allows():
            return _REMOTE
        self._mark()
        return self.local.try_acquire(permits)

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        # The hot path: permits from a lease that is due, nobody queued ahead: a counter
        # decrement, one clock read, no await, no Future (as cheap as the in-process bucket).
        lease = self._lease
        if lease is not None and 0 < permits <= lease.left and not self._queue:
            now = self._monotonic()
            if lease.ready_at <= now < lease.expires_at:
                lease.left -= permits
                return
        limit = self._max_wait if max_wait is None else to_seconds(max_wait)
        if permits > self._burst:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permits exceed the burst of {self._burst}; "
                "such a request can never be admitted"
            )
        if permits <= 0:
            return
        wait = self._from_lease(permits, limit)
        if wait is None and await self._remote(permits, limit):
            return
        if wait is None:
            self._mark()
            await self.local.acquire(permits, max_wait=limit)
        elif wait > 0.0:
            await self._clock.sleep(wait)  # our share of a lease not yet due

    async def _remote(self, permits: int, limit: float) -> bool:
        """Permits from Redis, through a lease: False when Redis failed (go local)."""
        while self.breaker.allows():
            wait = self._from_lease(permits, limit)
            if wait is not None:
                if wait > 0.0:
                    await self._clock.sleep(wait)
                return True
            if self.lease_max == 1:  # no batches to share: each caller asks for its own
                try:
                    wait = await self._request(permits, limit)
                except RateLimitRejectedError:
                    raise
                except Exception:
                    return False  # Redis failed now: this call goes local, the next asks again
                if wait > _EPSILON:
                    await self._clock.sleep(wait)  # our reserved slot
                return True
            if self._leasing is not None:  # a request is on its way: wait in line for it
                await self._in_line()
                continue
            leasing = self._leasing = asyncio.get_running_loop().create_future()
            try:
                wait = await self._request(permits, limit)
            except RateLimitRejectedError:
                raise
            except Exception:
                return False  # Redis failed now: this call goes local, the next asks again
            finally:
                self._leasing = None
                leasing.set_result(None)
                self._wake_line()
            if wait > _EPSILON:
                if self.lease_max > 1:  # the bucket is saturated: ask for the next lease now
                    self._saturated_limit = limit
                    self._ask_ahead()
                await self._clock.sleep(wait)  # our reserved slot
            else:
                self._saturated_limit = None
            return True
        return False

    async def _in_line(self) -> None:
        """Wait for the lease request in flight (one Future per waiter, woken in order)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled while in line: leave it
                self._queue.remove(waiter)

    def _wake_line(self) -> None:
        """The request came back (or failed): the callers in line look again, in order."""
        queue = self._queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def _request(self, permits: int, limit: float) -> float:
        """A new lease holding ``permits`` for this caller (the rest for later callers)."""
        wanted = max(permits, min(self._lease_size, self.lease_max))
        granted, wait = await self._take(permits, limit, wanted)
        if not granted:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permit(s) not available within {limit:g}s",
                retry_after=wait,
            )
        now = self._clock.monotonic()
        self._install(_Lease(granted, granted - permits, now + wait, self), now)
        return wait

    def _install(self, lease: _Lease, now: float) -> None:
        current = self._lease
        if current is None or not current.left or now >= current.expires_at:
            self._retire(current, now)
            self._lease = lease
        elif self._next is None:  # the current one still serves others: this one is next
            self._next = lease
        else:  # two leases held already: this one's rest goes back
            self._unreturned += lease.left
            lease.left = 0

    async def _take(self, permits: int, limit: float, wanted: int) -> tuple[int, float]:
        given = self._unreturned
        call = functools.partial(self._call, "take", permits, limit, wanted, given)
        granted, wait, paused = await self.breaker.call(call)
        self._unreturned -= given
        if paused > 0:
            self._paused_until = self._clock.monotonic() + paused
        return granted, wait

    def _ask_ahead(self) -> None:
        """Reserve the next lease while this one comes due (a saturated bucket)."""
        limit = self._saturated_limit
        if self._leasing is None and self._next is None and limit is not None:
            self._leasing = asyncio.get_running_loop().create_future()
            self._spawn(self._lease_ahead(self._leasing, limit))

    async def _lease_ahead(self, leasing: asyncio.Future[None], limit: float) -> None:
        try:
            wanted = min(self._lease_size, self.lease_max)
            granted, wait = await self._take(1, limit, wanted)
            if granted:
                now = self._clock.monotonic()
                self._install(_Lease(granted, granted, now + wait, self), now)
            if not wait > _EPSILON:
                self._saturated_limit = None  # permits were there at once: not saturated
        except Exception:
            self._saturated_limit = None  # the callers' own requests decide what comes next
        finally:
            if self._leasing is leasing:
                self._leasing = None
            leasing.set_result(None)
            self._wake_line()

    async def aclose(self) -> None:
        """Give unused leased permits back, stop background work (the client and the
        breaker belong to the caller)."""
        await self._stop()
        given = self._unreturned + self.held
        self._lease = self._next = None
        if given and self.breaker.available:
            try:
                await self.breaker.call(functools.partial(self._call, "take", 0, 0.0, 0, given))
                self._unreturned = 0
            except Exception:
                pass  # kept by the bucket: the limit errs on the safe side

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self.key!r}, rate={self._rate:g}, burst={self._burst})"
