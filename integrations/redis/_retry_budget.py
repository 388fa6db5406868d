"""``RedisRetryBudget``: one retry budget for a dependency, shared by every replica.

    budget = RedisRetryBudget(redis, breaker=redis_breaker(redis), key="openai", replicas=4)
    resilience.llm(retry_budget=budget)        # or RetryOptions(budget=...), add_hedging(budget=)

Without it each replica has its own :class:`~netra_resilience.admission.RetryBudget`: four
replicas allow four reserves, and a replica that sees few calls cannot retry while another
sits on unused budget. Here each replica counts its first attempts and its retries locally
(no Redis round trip on a call's path) and every ``sync_interval`` adds them to per-bucket
counters in one Redis hash with one script, which drops buckets older than ``ttl`` and returns
the fleet's totals. Until the next sync a replica may spend its ``1 / replicas`` share of what
the fleet had left plus ``ratio`` of its own new first attempts, so all replicas together stay
within ``ratio x fleet requests + min_per_second x ttl`` (the reserve is the fleet's, not each
replica's).

The first sync runs with the first call (or ``await budget.sync()`` at start-up). Until it
answers and while Redis is unavailable (its breaker open, or no sync succeeded for three
intervals; a sync is bounded by the breaker's timeout and skipped while it is open) a replica
decides alone, as a plain ``RetryBudget`` over its own counts with ``1 / replicas`` of the
reserve, counted in ``local_decisions``; once a sync has failed, the calls whose retry it
decided so are marked ``<breaker name>=fallback_memory``. What it counted meanwhile is sent
by the next sync that succeeds. A sync whose reply was lost after Redis ran it is sent again
(counted twice in the fleet totals for one ``ttl``: a little more or less budget, never
unbounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from netra_resilience.admission import RetryBudget
from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.clock import Clock
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.redis._client import checked_breaker
from netra_resilience.validation import Seconds, duration, integer, number

# KEYS[1]: the budget's hash. ARGV: the current bucket, buckets per ttl, first attempts and
# retries to add, the hash's expiry (ms). Fields are "<bucket>:d" and "<bucket>:s"; buckets
# older than the window are deleted, so the hash holds at most 2 x (buckets + 1) fields.
# Returns the fleet's first attempts and retries over the window.
SYNC = r"""
local bucket = tonumber(ARGV[1])
local oldest = bucket - tonumber(ARGV[2]) + 1
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', KEYS[1], bucket .. ':d', ARGV[3]) end
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[1], bucket .. ':s', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local deposits, spends = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local field = all[i]
  local sep = string.find(field, ':', 1, true)
  local b = sep and tonumber(string.sub(field, 1, sep - 1))
  if b == nil or b < oldest then
    redis.call('HDEL', KEYS[1], field)
  elseif string.sub(field, sep + 1) == 'd' then
    deposits = deposits + tonumber(all[i + 1])
  else
    spends = spends + tonumber(all[i + 1])
  end
end
return {deposits, spends}
"""

_BUCKETS = 10
_STALE_SYNCS = 3  # intervals without a good sync after which a replica decides alone


class RedisRetryBudget(RetryBudget):
    """A :class:`~netra_resilience.admission.RetryBudget` whose window is the fleet's, kept
    in Redis (see the module doc). ``key`` names the dependency (one hash per key, under the
    ``{netra:retry}`` hash tag); ``replicas``: how many processes share it. ``shared`` says
    whether decisions are made on the fleet's figures right now."""

    __slots__ = (
        "_clock", "_closed", "_fleet_reserve", "_interval", "_key", "_lock", "_new_deposits",
        "_new_spends", "_replicas", "_script", "_share", "_synced_at", "_task", "_ttl",
        "breaker", "client", "local_decisions", "syncs_failed",
    )  # fmt: skip

    def __init__(
        self,
        client: Redis,
        *,
        breaker: BackendBreaker,
        key: str,
        replicas: int = 1,
        ratio: float = 0.2,
        min_per_second: float = 1.0,
        ttl: Seconds = 10.0,
        sync_interval: Seconds = 1.0,
        prefix: str = "{netra:retry}:",
        clock: Clock | None = None,
    ) -> None:
        owner = type(self).__name__
        self.breaker = checked_breaker(owner, breaker)
        if not isinstance(key, str) or not key:
            raise InvalidOptionsError(owner, "key", "must be a non-empty string")
        self._replicas = integer(owner, "replicas", replicas)
        reserve = number(owner, "min_per_second", min_per_second, minimum=0.0, exclusive=False)
        self._ttl = duration(owner, "ttl", ttl)
        if math.isinf(self._ttl):
            raise InvalidOptionsError(owner, "ttl", "must be finite")
        self._interval = duration(owner, "sync_interval", sync_interval, maximum=self._ttl)
        clock = clock or breaker.clock
        # The local fallback's reserve is this replica's share of the fleet's.
        super().__init__(
            ratio=ratio, min_per_second=reserve / self._replicas, ttl=self._ttl, clock=clock
        )
        self._clock = clock
        self._fleet_reserve = reserve * self._ttl
        self.client = client
        self._key = f"{prefix}{key}"
        self._script: AsyncScript = client.register_script(SYNC)
        self._new_deposits = 0  # counted here since the last good sync (not in Redis yet)
        self._new_spends = 0
        self._share = 0.0
        self._synced_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._lock = asyncio.Lock()  # one sync at a time: each count is sent once
        self.local_decisions = 0
        self.syncs_failed = 0

    @property
    def shared(self) -> bool:
        """Are retries decided on the fleet's figures (a recent sync, Redis available)?"""
        if self._synced_at is None or not self.breaker.available:
            return False
        return self._clock.monotonic() - self._synced_at <= _STALE_SYNCS * self._interval

    def deposit(self) -> None:
        super().deposit()
        self._new_deposits += 1
        if self._task is None and not self._closed:
            with contextlib.suppress(RuntimeError):  # no running loop: syncs wait for one
                self._task = asyncio.get_running_loop().create_task(self._sync_forever())

    def try_spend(self) -> bool:
        if not self.shared:
            self.local_decisions += 1
            context = current_context() if self.syncs_failed else None  # not just starting
            if context is not None:
                context.degradation.mark(self.breaker.name, DegradationReason.FALLBACK_MEMORY)
            if not super().try_spend():
                return False
            self._new_spends += 1
            return True
        if self._new_spends + 1 > self._share + self.ratio * self._new_deposits:
            self.denied += 1
            return False
        self._spends.add()  # the local picture stays whole for a fallback
        self._new_spends += 1
        self.spent += 1
        return True

    @property
    def balance(self) -> float:
        if not self.shared:
            return super().balance
        return max(0.0, self._share + self.ratio * self._new_deposits - self._new_spends)

    async def sync(self) -> bool:
        """Send this replica's new counts and read the fleet's (one script, bounded by the
        breaker's timeout); False when Redis did not answer (the counts are kept)."""
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> bool:
        if not self.breaker.allows():  # open: no call (allows() starts the probe when due)
            self.syncs_failed += 1
            return False
        deposits, spends = self._new_deposits, self._new_spends
        bucket = int(self._clock.now().timestamp() // (self._ttl / _BUCKETS))
        args = [bucket, _BUCKETS, deposits, spends, int(self._ttl * 2000)]
        call = functools.partial(self._script, keys=[self._key], args=args)
        try:
            answer = await self.breaker.call(call)
        except Exception:  # Redis down, slow or the breaker open: decide locally meanwhile
            self.syncs_failed += 1
            return False
        self._new_deposits -= deposits  # what was counted during the call stays for the next
        self._new_spends -= spends
        fleet_deposits, fleet_spends = (int(x) for x in answer)
        left = self.ratio * fleet_deposits + self._fleet_reserve - fleet_spends
        self._share = max(0.0, left) / self._replicas
        self._synced_at = self._clock.monotonic()
        return True

    async def _sync_forever(self) -> None:
        while True:
            await self.sync()
            await self._clock.sleep(self._interval)

    async def aclose(self) -> None:
        """Stop the background sync (the client and the breaker belong to the caller)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def __repr__(self) -> str:
        return (
            f"RedisRetryBudget(key={self._key!r}, replicas={self._replicas}, "
            f"shared={self.shared}, balance={self.balance:g}, denied={self.denied})"
        )


__all__ = ["RedisRetryBudget"]
