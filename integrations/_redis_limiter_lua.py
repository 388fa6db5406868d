"""The GCRA token-bucket Lua script behind :class:`RedisRateLimiter` (one atomic step)."""

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
