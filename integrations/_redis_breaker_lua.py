"""The Lua script behind :class:`RedisCircuitStateStore`: one atomic step per call.

It reproduces ``netra_resilience.circuit_breaker``'s ``CircuitController`` (lazy open ->
half-open, probe slots, late results, the rolling time window and the count ring) on a Redis
hash, so breakers in every process share one circuit. Times are seconds: Redis ``TIME``, or
the caller's wall clock when ARGV[2] is set (tests with a fake clock).

KEYS[1] state hash, KEYS[2] count-window ring (a byte string).
ARGV: op, now, failure_ratio, min_throughput, sampling, window, window_size, slow_ratio,
break_duration, permitted, half_open_max_wait, ttl, then the op's own arguments.
Returns {admitted, state, epoch, retry_after or '', changes, [throughput, failures, slow,
last_failure_type]}; each change is {old, new, reason, throughput, failures, slow, epoch,
break_duration or '', half_open_attempts, failure_type or ''}.
"""

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
