"""``RedisBudgetStore``: budget counters shared by every replica, one Lua script per step.

    store = RedisBudgetStore(redis, breaker=redis_breaker(redis), replicas=4)
    budget = Budget([BudgetLimit.cost_per_day(50.0, per=("tenant",))], store=store,
                    models=("gpt-4o-mini",))

``reserve`` checks every counter a call touches and adds its worst case to all of them in one
script, so concurrent replicas cannot all pass the same remaining figure; ``adjust`` (settle,
release) is one script too. Keys share the ``{netra:budget}`` hash tag (one cluster slot).

When Redis is down (each step bounded by the breaker's timeout, skipped while it is open) a
replica admits calls from a local share: ``(limit - the last total it saw in Redis) /
replicas`` per counter, marking ``<breaker name>=fallback_memory``. What it admitted and
settled meanwhile is kept and sent by :meth:`reconcile` (run when the breaker closes). Every
step carries a marker, so a step whose reply timed out but that Redis runs later (a SIGSTOPped
server reads its socket on SIGCONT) is applied once, and a reservation left undecided is
undone. The outage's overshoot is bounded by what other replicas held since each replica
last saw the total (that staleness, over ``replicas``); settled totals stay exact.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from netra_resilience.circuit_breaker import BackendBreaker, CircuitState, CircuitStateChange
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import ExecutionRejectedError
from netra_resilience.integrations.redis._client import checked_breaker
from netra_resilience.llm import Counter, InMemoryBudgetStore
from netra_resilience.validation import Seconds, duration, integer, to_seconds

# KEYS[1]: this reservation's marker, then the counters. ARGV[1]: the marker's expiry (ms),
# then per counter i: amount, limit, expiry (ms). Returns {0, totals...} when every amount
# fits (then all are added and the marker says so), {i, total of counter i} when counter i
# does not, {-1} when the marker exists (the reservation was already undone: a late copy).
RESERVE = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
for i = 2, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[3 * i - 4]) > tonumber(ARGV[3 * i - 3]) then
    return {i - 1, tostring(used)}
  end
end
local out = {0}
for i = 2, #KEYS do
  out[i] = tostring(redis.call('INCRBY', KEYS[i], ARGV[3 * i - 4]))
  redis.call('PEXPIREAT', KEYS[i], ARGV[3 * i - 2])
end
redis.call('SET', KEYS[1], 'r', 'PXAT', ARGV[1])
return out
"""

# KEYS[1]: this step's marker, then the counters. ARGV[1]: "add" or "undo", ARGV[2]: the
# marker's expiry (ms), then per counter i: delta, expiry (ms). Each step runs at most once
# (a copy that reaches Redis late, after a client-side timeout, is skipped): "add" applies
# when its marker is new; "undo" reverses a reservation only if it was applied, and blocks a
# late copy of it. A live counter gets its delta (never below 0); a missing one is created
# only by a positive delta (a local admission in a window Redis has not seen).
ADJUST = r"""
local mark = redis.call('GET', KEYS[1])
if ARGV[1] == 'undo' then
  redis.call('SET', KEYS[1], 'u', 'PXAT', ARGV[2])
  if mark ~= 'r' then return 0 end
elseif mark then
  return 0
else
  redis.call('SET', KEYS[1], 'a', 'PXAT', ARGV[2])
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #KEYS do
  local delta = tonumber(ARGV[2 * i - 1])
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], delta) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  elseif delta > 0 and tonumber(ARGV[2 * i]) > now_ms then
    redis.call('SET', KEYS[i], delta, 'PXAT', ARGV[2 * i])
  end
end
return 1
"""

GRANTED_LOCAL = -2
"""``reserve``'s answer for a call admitted from the local share (Redis unavailable)."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One change Redis has not acknowledged: sent again (same marker) until it is."""

    marker: str
    mode: str  # "add" or "undo"
    deltas: tuple[tuple[Counter, int], ...]


class RedisBudgetStore:
    """A ``BudgetStore`` in Redis; see the module doc. ``breaker``: the Redis server's
    :func:`redis_breaker`; ``replicas``: how many processes share the limits (their local
    shares while Redis is down add up to what the last seen totals left; ``fail_closed``
    refuses calls instead, an ``ExecutionRejectedError`` naming the Redis dependency, for a
    budget that must never be passed even during an outage). ``prefix`` names
    the step markers (keep the budget's hash tag); a marker lives ``dedupe_ttl``: a copy of a
    timed-out step reaching Redis later than that would apply twice."""

    def __init__(
        self,
        client: Redis,
        *,
        breaker: BackendBreaker,
        replicas: int = 1,
        prefix: str = "{netra:budget}:step:",
        dedupe_ttl: Seconds = 600.0,
        fail_closed: bool = False,
    ) -> None:
        owner = type(self).__name__
        self.breaker = checked_breaker(owner, breaker)
        self.replicas = integer(owner, "replicas", replicas)
        self._dedupe_ms = int(duration(owner, "dedupe_ttl", dedupe_ttl) * 1000)
        self.client = client
        self.fail_closed = bool(fail_closed)
        self._prefix = prefix
        self._reserve: AsyncScript = client.register_script(RESERVE)
        self._adjust: AsyncScript = client.register_script(ADJUST)
        self.local = InMemoryBudgetStore()
        self._seen: dict[str, int] = {}  # key -> last total read from Redis
        self._pending: list[_Step] = []  # in order; each has its own marker
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Lock()  # one reconciliation at a time keeps the order
        self._unsubscribe: Callable[[], None] = breaker.add_state_listener(self._on_breaker)

    @property
    def pending(self) -> int:
        """How many changes Redis has not acknowledged yet."""
        return len(self._pending)

    def _marker(self) -> str:
        return f"{self._prefix}{uuid.uuid4().hex}"

    def _marker_expiry(self, now: float) -> str:
        return str(int(now * 1000) + self._dedupe_ms)

    async def _run_reserve(self, marker: str, counters: Sequence[Counter], now: float) -> list[int]:
        args = [self._marker_expiry(now)]
        for c in counters:
            args += [str(c.amount), str(c.limit), str(int(c.expires_at * 1000))]
        answer = await self._reserve(keys=[marker, *(c.key for c in counters)], args=args)
        return [int(x) for x in answer]

    async def _run_step(self, step: _Step, now: float) -> None:
        args = [step.mode, self._marker_expiry(now)]
        for counter, delta in step.deltas:
            args += [str(delta), str(int(counter.expires_at * 1000))]
        await self._adjust(keys=[step.marker, *(c.key for c, _ in step.deltas)], args=args)

    async def reserve(self, counters: Sequence[Counter], now: float) -> int:
        if self.breaker.allows():
            marker = self._marker()
            call = functools.partial(self._run_reserve, marker, counters, now)
            try:
                answer = await self.breaker.call(call)
            except Exception:
                # Unknown whether Redis ran it (a late copy may still arrive): undo it there
                # once Redis answers again, and decide this call locally.
                undo = tuple((c, -c.amount) for c in counters)
                self._pending.append(_Step(marker, "undo", undo))
            else:
                if answer[0] == 0:
                    for counter, total in zip(counters, answer[1:], strict=True):
                        self._seen[counter.key] = total
                    return -1
                failed = answer[0] - 1
                self._seen[counters[failed].key] = answer[1]
                return failed
        return self._reserve_locally(counters, now)

    def _reserve_locally(self, counters: Sequence[Counter], now: float) -> int:
        if self.fail_closed:
            raise ExecutionRejectedError(
                "budget store unavailable: calls are refused until it answers",
                retry_after=to_seconds(self.breaker.retry_interval),
                dependency=self.breaker.name,
            )
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.breaker.name, DegradationReason.FALLBACK_MEMORY)
        shares = [
            Counter(
                c.key,
                c.amount,
                max(0, c.limit - self._seen.get(c.key, 0)) // self.replicas,
                c.expires_at,
            )
            for c in counters
        ]
        failed = self.local.reserve_now(shares, now)
        if failed >= 0:
            return failed
        self._pending.append(_Step(self._marker(), "add", tuple((c, c.amount) for c in counters)))
        return GRANTED_LOCAL

    async def adjust(
        self, deltas: Sequence[tuple[Counter, int]], now: float, *, local: bool = False
    ) -> None:
        step = _Step(self._marker(), "add", tuple(deltas))
        if local:
            self.local.adjust_now(deltas, now)  # frees room in this replica's share
            self._pending.append(step)
            return
        for counter, delta in deltas:  # a settled hold also frees room in the last seen total
            if counter.key in self._seen:
                self._seen[counter.key] = max(0, self._seen[counter.key] + delta)
        if self.breaker.allows():
            try:
                await self.breaker.call(functools.partial(self._run_step, step, now))
                return
            except Exception:
                pass  # kept, with its marker: sent again it still applies once
        self._pending.append(step)

    async def used(self, key: str, now: float) -> int:
        value = await self.breaker.call(functools.partial(self.client.get, key))
        return int(value) if value is not None else 0

    async def reconcile(self, now: float | None = None) -> bool:
        """Send, in order, what was admitted, settled and left undecided while Redis was
        unavailable (one script per change); True when nothing is left to send."""
        moment = self.breaker.clock.now().timestamp() if now is None else now
        async with self._sending:
            while self._pending:
                step = self._pending[0]
                try:
                    await self.breaker.call(functools.partial(self._run_step, step, moment))
                except Exception:
                    return False
                self._pending.pop(0)
            self.local = InMemoryBudgetStore()  # Redis holds it all again
            return True

    def _on_breaker(self, _old: CircuitState, new: CircuitState, _: CircuitStateChange) -> None:
        if new is CircuitState.CLOSED and self._pending:
            task = asyncio.get_running_loop().create_task(self._reconcile_quietly())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reconcile_quietly(self) -> None:
        await self.reconcile()

    async def aclose(self) -> None:
        """Stop background work (the client and the breaker belong to the caller)."""
        self._unsubscribe()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __repr__(self) -> str:
        return f"RedisBudgetStore(replicas={self.replicas})"
