"""``RedisEventLog``: each run's events in one Redis Stream, so a client resumes on any replica.

    redis = redis_client("redis://cache:6379/0")
    log = RedisEventLog(redis, breaker=redis_breaker(redis))
    engine = wrap_engine(agent, event_log=log)           # every event: XADD, in order
    async for event in log.follow(run_id, last_seq): ... # XRANGE the missed ones, XREAD live

One stream per run (``prefix + run_id``), entry id ``<seq>-0`` so Redis itself refuses a
``seq`` at or below the last one (a re-sent event is never duplicated, and two writers for
one run - an owner and a sweep - cannot interleave out of order). ``MAXLEN ~`` bounds it and
every append renews its TTL. Every event is first kept in a local :class:`InMemoryEventLog`
mirror (what the client connected here follows, at memory speed); events Redis missed while
it was down are written back, in order, with the next append that reaches it, so the shared
stream never has a hole. While the shared Redis breaker is open, appends return
``LOCAL_ONLY`` (the run is flagged ``events=local_only``) and never wait.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from redis.asyncio import Redis

from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.engine import (
    Event,
    InMemoryEventLog,
    ReplayUnavailableError,
    Stored,
)
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.redis._client import REDIS_ERRORS, checked_breaker
from netra_resilience.validation import duration, integer

__all__ = ["RedisEventLog"]

_OWNER = "RedisEventLog"
_FINAL = "agent_completed"
_MAX_TRACKED_RUNS = 10_000
_DOWN = "the shared event log is unavailable right now"

# KEYS[1] stream. ARGV: maxlen, ttl ms, then (seq, json) pairs in seq order. An id at or below
# the stream's top is refused by XADD itself (pcall: skipped, not an error). Returns the
# highest seq added (0 if none) and the stream's top seq after the call.
_APPEND = """
local added = 0
for i = 3, #ARGV, 2 do
  local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[i] .. '-0', 'e', ARGV[i+1])
  if type(ok) ~= 'table' then added = tonumber(ARGV[i]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = 0
if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)')) end
return {added, last}
"""


def _seq_of(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-", 1)[0])


def _decode(fields: Any) -> Event:
    raw = fields.get(b"e", fields.get("e"))
    event: Event = json.loads(raw)
    return event


class RedisEventLog:
    """The shared :class:`~netra_resilience.engine.EventLog` on Redis Streams.

    * ``breaker``: the Redis server's shared :class:`BackendBreaker` (``redis_breaker``).
    * ``ttl``: seconds a run's stream lives after its last event.
    * ``max_events_per_run``: the ``MAXLEN ~`` bound (a resume past it is refused, not gapped).
    * ``block``: seconds one live ``XREAD BLOCK`` waits (below the client's socket timeout).
    * ``local``: the in-process mirror (default: same bounds, on the breaker's clock).
    """

    def __init__(
        self,
        client: Redis,
        *,
        breaker: BackendBreaker,
        prefix: str = "netra:events:",
        ttl: float = 3600.0,
        max_events_per_run: int = 1000,
        block: float = 0.25,
        local: InMemoryEventLog | None = None,
    ) -> None:
        self.client = client
        self.breaker = checked_breaker(_OWNER, breaker)
        if not isinstance(prefix, str) or not prefix:
            raise InvalidOptionsError(_OWNER, "prefix", "must be a non-empty string")
        self.prefix = prefix
        self.ttl = duration(_OWNER, "ttl", ttl)
        self.max_events_per_run = integer(
            _OWNER, "max_events_per_run", max_events_per_run, minimum=1
        )
        self.block = duration(_OWNER, "block", block, maximum=0.9)
        self.local = local or InMemoryEventLog(
            max_events_per_run=self.max_events_per_run,
            ttl=min(self.ttl, 3600.0),
            clock=self.breaker.clock,
        )
        self._synced: dict[str, int] = {}  # run -> highest seq known to be in Redis
        self._append = client.register_script(_APPEND)

    def _key(self, run_id: str) -> str:
        return self.prefix + run_id

    # -- writing -----------------------------------------------------------------------
    async def append(self, event: Event) -> Stored:
        run_id = str(event["run_id"])
        seq = int(event["seq"])
        new_here = self.local.put(event)
        if not new_here and seq <= self._synced.get(run_id, 0):
            return Stored.DUPLICATE
        breaker = self.breaker
        if not breaker.allows():
            return Stored.LOCAL_ONLY
        try:
            added = await breaker.call(lambda: self._sync(run_id, seq))
        except REDIS_ERRORS:
            return Stored.LOCAL_ONLY
        if event.get("type") == _FINAL:
            self._synced.pop(run_id, None)  # nothing more to write back for this run
        if added < seq:
            return Stored.DUPLICATE  # Redis had this seq already (another writer)
        return Stored.STORED

    async def _sync(self, run_id: str, seq: int) -> int:
        """Write every locally kept event Redis has not seen, up to ``seq``; returns the
        highest seq this call added."""
        synced = self._synced.get(run_id, 0)
        pending = [e for e in self.local.buffered_after(run_id, synced) if int(e["seq"]) <= seq]
        if not pending:
            return 0
        args: list[Any] = [self.max_events_per_run, max(1, round(self.ttl * 1000))]
        for event in pending:
            args += [int(event["seq"]), json.dumps(event, separators=(",", ":"))]
        added, top = await self._append(keys=[self._key(run_id)], args=args)
        self._synced[run_id] = max(int(top), synced)
        if len(self._synced) > _MAX_TRACKED_RUNS:
            self._synced.pop(next(iter(self._synced)))  # the oldest run written
        return int(added)

    # -- reading -----------------------------------------------------------------------
    async def read(self, run_id: str, last_seq: int) -> list[Event]:
        if self.local.knows(run_id):
            try:
                return self.local.after(run_id, last_seq)
            except ReplayUnavailableError:
                pass  # the mirror holds only part of the run (it continued here): ask Redis
        return await self._read_shared(run_id, last_seq)

    async def _read_shared(self, run_id: str, last_seq: int) -> list[Event]:
        key = self._key(run_id)

        async def fetch() -> tuple[int, list[Any]]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(key)
                pipe.xrange(key, min=f"{last_seq + 1}-0", max="+")
                exists, entries = await pipe.execute()
            return int(exists), entries

        if not self.breaker.allows():
            raise ReplayUnavailableError(_DOWN, "unavailable")
        try:
            exists, entries = await self.breaker.call(fetch)
        except REDIS_ERRORS:
            raise ReplayUnavailableError(_DOWN, "unavailable") from None
        if not exists:
            raise ReplayUnavailableError(f"run {run_id!r} is unknown or expired")
        events = [_decode(fields) for _, fields in entries]
        if events and int(events[0]["seq"]) > last_seq + 1:
            raise ReplayUnavailableError(
                f"run {run_id!r}: events after seq {last_seq} were trimmed (MAXLEN bound)",
                "trimmed",
            )
        return events

    async def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        local = self.local
        if local.knows(run_id):
            try:
                local.after(run_id, last_seq)
            except ReplayUnavailableError:
                pass
            else:  # this replica holds the run from last_seq on: follow it at memory speed
                async for event in local.follow(run_id, last_seq):
                    yield event
                return
        cursor = last_seq
        for event in await self._read_shared(run_id, cursor):
            cursor = int(event["seq"])
            yield event
            if event.get("type") == _FINAL:
                return
        key = self._key(run_id)
        block_ms = max(1, round(self.block * 1000))
        clock = self.breaker.clock
        while True:
            if not self.breaker.allows():
                raise ReplayUnavailableError(_DOWN, "unavailable")
            try:
                async with clock.timeout(self.block + self.breaker.timeout):
                    reply: Any = await self.client.xread(
                        {key: f"{cursor}-0"}, count=100, block=block_ms
                    )
            except REDIS_ERRORS:
                raise ReplayUnavailableError(_DOWN, "unavailable") from None
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    seq = _seq_of(entry_id)
                    if seq != cursor + 1:
                        raise ReplayUnavailableError(
                            f"run {run_id!r}: events after seq {cursor} were trimmed", "trimmed"
                        )
                    cursor = seq
                    event = _decode(fields)
                    yield event
                    if event.get("type") == _FINAL:
                        return

    async def last_seq(self, run_id: str) -> int:
        local = await self.local.last_seq(run_id)
        if not self.breaker.allows():
            return local
        try:
            top = await self.breaker.call(lambda: self.client.xrevrange(self._key(run_id), count=1))
        except REDIS_ERRORS:
            return local
        shared = _seq_of(top[0][0]) if top else 0
        return max(local, shared)

    def __repr__(self) -> str:
        return f"RedisEventLog(prefix={self.prefix!r}, breaker={self.breaker!r})"
