"""``RedisCircuitStateStore``: one circuit per key across every process, in Redis.

    redis = redis_client("redis://cache:6379/0")
    store = RedisCircuitStateStore(redis, breaker=redis_breaker(redis))
    CircuitBreakerOptions(store=store, ...)   # same pipeline name in every replica = one circuit

Each breaker step is one Lua script (atomic): shared state, window counts, global half-open
probe slots, epochs. Redis being down must not become an outage of the dependency the breaker
protects, nor slow it down: every step is bounded by the timeout of the Redis server's
:class:`~netra_resilience.circuit_breaker.BackendBreaker` (shared with everything else that
uses that server), and while it is open the store keeps a *local* circuit per key
(:class:`InMemoryCircuitStateStore`), so each process still breaks on its own, marking
``<breaker name>=fallback_memory``. When Redis answers again (the breaker closes), circuits
that opened (or were isolated) locally are merged into the shared state and the local ones
are dropped.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from netra_resilience.circuit_breaker import (
    BackendBreaker,
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
from netra_resilience.integrations.redis._client import checked_breaker
from netra_resilience.validation import integer


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def optional_float(value: Any) -> float | None:
    decoded = text(value)
    return float(decoded) if decoded else None


def health(tp: Any, fl: Any, sl: Any) -> HealthInfo:
    return HealthInfo.of(int(float(text(tp))), int(float(text(fl))), int(float(text(sl))))


def local_epoch(epoch: int) -> int:
    """Permits from the local fallback carry negative epochs, so ``record`` routes them back."""
    return -1 - epoch


def script_args(op: str, now: str, policy: CircuitPolicy, ttl: int, *args: Any) -> list[Any]:
    """ARGV in the order the script reads it; ``now`` is ``''`` to use Redis ``TIME``."""
    return [
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
        ttl,
        *args,
    ]


def decode_changes(key: str, raw: list[Any]) -> tuple[CircuitStateChange, ...]:
    return tuple(
        CircuitStateChange(
            key,
            CircuitState(text(old)),
            CircuitState(text(new)),
            text(reason),
            health(tp, fl, sl),
            int(epoch),
            optional_float(duration),
            int(text(attempts)),
            text(failure) or None,
        )
        for old, new, reason, tp, fl, sl, epoch, duration, attempts, failure in raw
    )


def decode_permit(key: str, raw: list[Any]) -> Permit:
    admitted, state, epoch, retry_after, changes = raw
    return Permit(
        bool(admitted),
        CircuitState(text(state)),
        int(epoch),
        optional_float(retry_after),
        decode_changes(key, changes),
    )


def decode_snapshot(raw: list[Any]) -> CircuitSnapshot:
    _, state, _, retry_after, _, tp, fl, sl, failure = raw
    return CircuitSnapshot(
        CircuitState(text(state)),
        optional_float(retry_after),
        health(tp, fl, sl),
        text(failure) or None,
    )


SCRIPT = r"""
local H, RING = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local ratio, min_tp, sampling = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local window, size, slow_ratio = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local break_default, permitted = tonumber(ARGV[9]), tonumber(ARGV[10])
local max_wait, ttl = tonumber(ARGV[11]), tonumber(ARGV[12])
local INF = 1e300
local function f(x) return string.format('%.17g', x) end

local s = {}
local raw = redis.call('HGETALL', H)
for i = 1, #raw, 2 do s[raw[i]] = raw[i + 1] end
local fresh = s.st == nil
local function num(f, d)
  local v = tonumber(s[f])
  if v == nil then return d end
  return v
end
local st = s.st or 'closed'
local ep, bu, oa, bd = num('ep', 0), num('bu', 0), num('oa', 0), num('bd', 0)
local hd, ha = num('hd', 0), num('ha', 0)
local pa, pd, pf, ps = num('pa', 0), num('pd', 0), num('pf', 0), num('ps', 0)
local lf = s.lf or ''
local T, F, S = num('T', 0), num('F', 0), num('S', 0)
local nb = 1
if sampling / 10 >= 0.02 then nb = 10 end
local bucket = sampling / nb
local start, next_roll, ri = num('cs', now), num('nr', 0), num('ri', 0)
local buckets = {}
if s.wb then
  for part in string.gmatch(s.wb, '[^|]+') do
    local a, b, c, d = string.match(part, '([^,]+),([^,]+),([^,]+),([^,]+)')
    buckets[#buckets + 1] = {tonumber(a), tonumber(b), tonumber(c), tonumber(d)}
  end
end
local changes = {}

local function w_reset()
  if window == 'time' then
    buckets = {{now, T, F, S}}
    start = now
    next_roll = now + bucket
  else
    redis.call('DEL', RING)
    ri, T, F, S = 0, 0, 0, 0
  end
end
local function w_roll()
  if now - start >= bucket then
    start = now
    buckets[#buckets + 1] = {now, T, F, S}
  end
  while #buckets > 1 and now - buckets[1][1] >= sampling do table.remove(buckets, 1) end
  next_roll = math.min(start + bucket, buckets[1][1] + sampling)
end
local function w_add(failed, slow)
  if window == 'time' then
    if now >= next_roll then w_roll() end
  else
    local old = redis.call('GETRANGE', RING, ri, ri)
    if old ~= '' then
      local o = string.byte(old)
      if o > 0 then
        T = T - 1
        if o % 4 >= 2 then F = F - 1 end
        if o >= 4 then S = S - 1 end
      end
    end
    local code = 1
    if failed then code = code + 2 end
    if slow then code = code + 4 end
    redis.call('SETRANGE', RING, ri, string.char(code))
    ri = ri + 1
    if ri >= size then ri = 0 end
  end
  T = T + 1
  if failed then F = F + 1 end
  if slow then S = S + 1 end
end
local function w_health()
  if window == 'time' then
    if now >= next_roll then w_roll() end
    local b = buckets[1]
    return T - b[2], F - b[3], S - b[4]
  end
  return T, F, S
end
if fresh or (window == 'time' and #buckets == 0) then w_reset() end

local function publish(old, reason, tp, fl, sl, dur, ft)
  local d = ''
  if dur ~= nil then d = f(dur) end
  changes[#changes + 1] = {old, st, reason, f(tp), f(fl), f(sl),
    f(ep), d, f(ha), ft or ''}
end
local function t_open(reason, tp, fl, sl, dur, ft)
  local old = st
  if tp == nil then tp, fl, sl = w_health() end
  if dur == nil then dur = break_default end
  st, ep, oa, bd, bu = 'open', ep + 1, now, dur, now + dur
  if ft ~= nil and ft ~= '' then lf = ft end
  publish(old, reason, tp, fl, sl, dur, ft)
end
local function t_half_open()
  st, ep, ha = 'half_open', ep + 1, ha + 1
  pa, pd, pf, ps = 0, 0, 0, 0
  hd = now + max_wait
  local tp, fl, sl = w_health()
  publish('open', 'break_elapsed', tp, fl, sl, nil, nil)
end
local function t_close(reason)
  local old = st
  st, ep, bu, ha = 'closed', ep + 1, 0, 0
  w_reset()
  if old ~= 'closed' then
    local tp, fl, sl = w_health()
    publish(old, reason, tp, fl, sl, nil, nil)
  end
end
local function t_isolate()
  if st == 'isolated' then return end
  local old = st
  st, ep, bu = 'isolated', ep + 1, INF
  local tp, fl, sl = w_health()
  publish(old, 'manual', tp, fl, sl, nil, nil)
end
local function advance()
  if st == 'half_open' and now >= hd and pd < pa then t_open('probe_abandoned') end
  if st == 'open' and now >= bu then t_half_open() end
end
local function retry_after()
  if st == 'open' then return f(math.max(bu - now, 0)) end
  if st == 'half_open' and pa >= permitted then return f(math.max(hd - now, 0)) end
  return ''
end

local admitted = 1
local retry = ''
local snap = nil
if op == 'acquire' then
  advance()
  if st == 'closed' then
    admitted = 1
  elseif st == 'half_open' and pa < permitted then
    pa = pa + 1
  else
    admitted = 0
    if st ~= 'isolated' then retry = retry_after() end
  end
elseif op == 'record' then
  local pep, failed, slow = tonumber(ARGV[13]), ARGV[14] == '1', ARGV[15] == '1'
  local abandoned, dur, ft = ARGV[16] == '1', tonumber(ARGV[17]), ARGV[18]
  if abandoned then
    if pep == ep and st == 'half_open' then t_open('probe_abandoned', nil, nil, nil, dur) end
  elseif pep ~= ep then
    if st ~= 'closed' then w_add(failed, slow) end
  elseif st == 'closed' then
    w_add(failed, slow)
    if failed or slow then
      local tp, fl, sl = w_health()
      if tp >= min_tp then
        if failed and fl / tp >= ratio then
          t_open('failure_ratio', tp, fl, sl, dur, ft)
        elseif slow and sl / tp >= slow_ratio then
          t_open('slow_call_ratio', tp, fl, sl, dur, ft)
        end
      end
    end
  elseif st == 'half_open' then
    pd = pd + 1
    if failed then pf = pf + 1 end
    if slow then ps = ps + 1 end
    if pf / permitted >= ratio then
      t_open('probe_failed', nil, nil, nil, dur, ft)
    elseif ps / permitted >= slow_ratio then
      t_open('probe_slow', nil, nil, nil, dur, ft)
    elseif pd >= permitted then
      t_close('probes_succeeded')
    end
  end
elseif op == 'set_break' then
  if fresh or tonumber(ARGV[13]) ~= ep or st ~= 'open' then return {0, st, ep, '', {}} end
  bd = tonumber(ARGV[14])
  bu = oa + bd
elseif op == 'isolate' then
  t_isolate()
elseif op == 'close' then
  t_close('manual')
elseif op == 'merge' then
  -- Resync after an outage of Redis itself: a circuit opened (or isolated) locally in the
  -- meantime opens the shared one for the rest of its break, unless that is open already.
  advance()
  if ARGV[13] == 'isolated' then
    t_isolate()
  elseif st == 'closed' or st == 'half_open' then
    t_open('resync', nil, nil, nil, tonumber(ARGV[14]), ARGV[15])
  end
elseif op == 'snapshot' then
  -- Reads roll the time window as the in-process one does, so the roll is saved too.
  local state = st
  if st == 'open' and now >= bu then state = 'half_open' end
  local tp, fl, sl = w_health()
  snap = {1, state, ep, retry_after(), {}, f(tp), f(fl), f(sl), lf}
end

local wb = {}
for i = 1, #buckets do
  local b = buckets[i]
  wb[i] = f(b[1]) .. ',' .. f(b[2]) .. ',' .. f(b[3]) .. ',' .. f(b[4])
end
redis.call('HSET', H, 'st', st, 'ep', ep, 'bu', f(bu), 'oa', f(oa),
  'bd', f(bd), 'hd', f(hd), 'ha', ha, 'pa', pa, 'pd', pd, 'pf', pf, 'ps', ps,
  'lf', lf, 'T', T, 'F', F, 'S', S, 'cs', f(start), 'nr', f(next_roll),
  'wb', table.concat(wb, '|'), 'ri', ri)
redis.call('EXPIRE', H, ttl)
if window == 'count' then redis.call('EXPIRE', RING, ttl) end
if snap then return snap end
return {admitted, st, ep, retry, changes}
"""


_ISOLATED = CircuitState.ISOLATED
_OPEN = CircuitState.OPEN


class RedisBreakerSteps:
    """The plumbing half of :class:`RedisCircuitStateStore` (whose ``__init__`` sets these)."""

    client: Redis
    prefix: str
    breaker: BackendBreaker
    _clock: Clock | None
    _local_clock: Clock
    _ttl: int
    _script: AsyncScript
    _local: InMemoryCircuitStateStore
    _local_keys: dict[str, CircuitPolicy]
    _resync: asyncio.Task[None] | None
    _unsubscribe: Callable[[], None]

    async def _run(self, op: str, key: str, policy: CircuitPolicy, *args: Any) -> list[Any]:
        tag = f"{{{self.prefix}{key}}}"
        now = "" if self._clock is None else repr(self._clock.now().timestamp())
        argv = script_args(op, now, policy, self._ttl, *args)
        result: list[Any] = await self._script(keys=[f"{tag}:s", f"{tag}:r"], args=argv)
        return result

    async def _step(self, op: str, key: str, policy: CircuitPolicy, *args: Any) -> list[Any] | None:
        """The Redis step, or ``None`` when Redis is down (then the caller goes local)."""
        if not self.breaker.allows():
            return None
        try:
            result: list[Any] = await self.breaker.call(
                functools.partial(self._run, op, key, policy, *args)
            )
        except Exception:
            return None
        return result

    def _go_local(self, key: str, policy: CircuitPolicy) -> None:
        self._local_keys[key] = policy
        ctx = current_context()
        if ctx is not None:
            ctx.degradation.mark(self.breaker.name, DegradationReason.FALLBACK_MEMORY)

    # -- resync after a Redis outage ----------------------------------------------------
    def _on_breaker(self, _old: CircuitState, new: CircuitState, _: CircuitStateChange) -> None:
        if new is CircuitState.CLOSED and self._local_keys and self._resync is None:
            self._resync = asyncio.get_running_loop().create_task(self.resync())

    async def resync(self) -> None:
        """Merge circuits that opened or were isolated locally into Redis; drop local state."""
        try:
            local, keys = self._local, self._local_keys
            self._local, self._local_keys = InMemoryCircuitStateStore(clock=self._local_clock), {}
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
        """Stop a running resync (the client and the breaker belong to the caller)."""
        self._unsubscribe()
        task = self._resync
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class RedisCircuitStateStore(RedisBreakerSteps):
    """A :class:`~netra_resilience.circuit_breaker.CircuitStateStore` on Redis.

    * ``prefix``: key prefix; a circuit lives under ``{prefix<key>}:s`` (and ``:r`` for a
      count window), hash-tagged for Redis Cluster.
    * ``breaker``: the Redis server's breaker (:func:`redis_breaker`), shared with its other
      users: it bounds each step and decides when the store goes local.
    * ``clock``: ``None`` uses Redis ``TIME`` (one clock for every process: recommended); a
      clock's wall time makes steps deterministic in tests. The local fallback runs on it,
      or on the breaker's clock.
    * ``ttl``: an idle circuit is forgotten (closed) after this long.
    """

    def __init__(
        self,
        client: Redis,
        *,
        breaker: BackendBreaker,
        prefix: str = "netra:circuit:",
        clock: Clock | None = None,
        ttl: int = 86_400,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.breaker = breaker = checked_breaker("RedisCircuitStateStore", breaker)
        self._clock = clock
        self._local_clock = clock or breaker.clock
        self._ttl = integer("RedisCircuitStateStore", "ttl", ttl)
        self._script = client.register_script(SCRIPT)
        self._local = InMemoryCircuitStateStore(clock=self._local_clock)
        self._local_keys: dict[str, CircuitPolicy] = {}
        self._policies: dict[str, CircuitPolicy] = {}  # for set_break, which gets none
        self._resync: asyncio.Task[None] | None = None
        self._unsubscribe = breaker.add_state_listener(self._on_breaker)

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
