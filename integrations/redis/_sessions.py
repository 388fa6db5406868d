"""``RedisSessionBackend``: sessions as Redis hashes, versioned writes in one Lua script;
session logs as sorted sets, appended to (never rewritten) in another."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from netra_resilience.integrations.redis._client import redis_should_handle
from netra_resilience.predicates import OutcomePredicate
from netra_resilience.sessions import SessionEntry, SessionRecord

__all__ = ["RedisSessionBackend"]

# KEYS[1] session key. ARGV: version, kind ("d" data / "t" tombstone), data, expires_at, px.
# Compare-and-set on the version: an older write (a late outage write-back) never wins.
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == 'd' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[4], 'd', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[4])
end
if ARGV[5] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

# KEYS[1] log key. ARGV: score (the entry's version), member, px, keep. ZADD of a member that
# is there already changes nothing, so a write-back of an entry Redis holds is harmless.
_APPEND = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


def _member(entry: SessionEntry) -> bytes:
    return f"{entry.id}|{entry.expires_at!r}|".encode() + entry.data


def _entry(key: str, member: bytes | str) -> SessionEntry:
    raw = member.encode() if isinstance(member, str) else member  # decode_responses=True
    entry_id, expires, data = raw.split(b"|", 2)
    return SessionEntry(key, entry_id.decode(), data, float(expires))


class RedisSessionBackend:
    """Primary session backend on Redis (``HMGET`` to read: one round trip each way).

    Each session is a hash ``{v: version, e: expires_at, d: data}`` under ``prefix + key``
    with a Redis TTL; a deletion keeps a tombstone hash (no ``d``) until it expires, so an
    outage write-back of an older version cannot resurrect the session. Each log is a sorted
    set under ``log_prefix + key`` (default: ``prefix`` with ``-log`` before its last ``:``),
    scored by entry version, member ``id|expires_at|data``; the key's TTL is its newest
    entry's.
    """

    unavailable: OutcomePredicate = redis_should_handle
    """Which errors mean Redis is down (what a session store's own breaker for it counts)."""

    def __init__(
        self, client: Redis, *, prefix: str = "netra:session:", log_prefix: str | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.log_prefix = prefix.removesuffix(":") + "-log:" if log_prefix is None else log_prefix
        self._save = client.register_script(_SAVE)
        self._append = client.register_script(_APPEND)

    async def load(self, key: str) -> SessionRecord | None:
        version, expires, data = await self.client.hmget(self.prefix + key, ["v", "e", "d"])
        if version is None:
            return None
        if isinstance(data, str):  # a client made with decode_responses=True
            data = data.encode()
        return SessionRecord(key, int(version), data, float(expires) if expires else None)

    async def save(self, record: SessionRecord, now: float) -> bool:
        px: Any = ""
        if record.expires_at is not None:
            px = math.ceil((record.expires_at - now) * 1000)
            if px <= 0:
                return False
        args = [
            record.version,
            "t" if record.data is None else "d",
            record.data or b"",
            "" if record.expires_at is None else repr(record.expires_at),
            px,
        ]
        stored = await self._save(keys=[self.prefix + record.key], args=args)
        return bool(stored)

    async def append(self, entry: SessionEntry, now: float, keep: int) -> None:
        px = math.ceil((entry.expires_at - now) * 1000)
        if px <= 0:
            return  # already expired: nothing to keep
        args: list[bytes | int] = [entry.version, _member(entry), px, keep]
        await self._append(keys=[self.log_prefix + entry.key], args=args)

    async def entries(self, key: str, limit: int) -> Sequence[SessionEntry]:
        members: Any = await self.client.zrange(self.log_prefix + key, -limit, -1)
        return [_entry(key, member) for member in members]

    async def ping(self) -> None:
        await self.client.ping()
