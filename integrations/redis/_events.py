"""``RedisEventLog``: each run's events in one Redis Stream, so a client resumes on any replica.

    redis = redis_client("redis://cache:6379/0")
    log = RedisEventLog(redis, breaker=redis_breaker(redis))
    engine = wrap_engine(agent, event_log=log)           # every event: XADD, in order
    async for event in log.follow(run_id, last_seq): ... # XRANGE the missed ones, XREAD live

One stream per run (``prefix + run_id``), entry id ``<seq>-0`` so Redis itself refuses a
``seq`` at or below the last one (a re-sent event is never duplicated, and two writers for
one run - an owner and a sweep - cannot interleave out of order). ``MAXLEN ~`` bounds it and
every append renews its TTL. Each event goes to Redis first, then to a local
:class:`InMemoryEventLog` mirror (what the clients connected here follow, at memory speed),
so a client never holds an event that a resume on another replica could miss. While the
shared Redis breaker is open (or a write fails) the event goes to the mirror alone at once,
``LOCAL_ONLY`` (the run is flagged ``events=local_only``), and is written back, in order,
with the next append that reaches Redis, so the shared stream never has a hole. A run whose
final event could only be kept locally is resumable on this replica alone (best-effort).
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import AsyncGenerator, Sequence
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
        # run -> its events Redis has not got yet (written back, in order, with the next
        # append that reaches Redis)
        self._backlog: dict[str, deque[Event]] = {}
        self._append = client.register_script(_APPEND)

    def _key(self, run_id: str) -> str:
        return self.prefix + run_id

    # -- writing -----------------------------------------------------------------------
    async def append(self, event: Event) -> Stored:
        run_id = str(event["run_id"])
        seq = int(event["seq"])
        local = self.local
        if seq <= await local.last_seq(run_id):
            return Stored.DUPLICATE
        backlog = self._backlog.get(run_id, ())
        stored = Stored.LOCAL_ONLY
        breaker = self.breaker
        if breaker.allows():
            pending = [*backlog, event]
            try:
                added = await breaker.call(lambda: self._write(run_id, pending))
            except Exception:  # whatever failed, the event must reach the backlog and the
                pass  # mirror: escaping here lost it from both and left a gap in the stream
            else:
                self._backlog.pop(run_id, None)
                stored = Stored.STORED if added >= seq else Stored.DUPLICATE
        if stored is Stored.LOCAL_ONLY:
            self._keep_back(run_id, event)
        if stored is not Stored.DUPLICATE:
            # Only now may followers here see it: an event a client got is one the shared
            # log has (or one flagged local_only), so a resume elsewhere never misses it.
            local.put(event)
        return stored

    async def write_back(self) -> int:
        """Write every run's backlog to Redis, in order (for runs with no next append to
        carry it: a final event that failed to reach Redis); returns the runs written back.
        ``RunLeases`` calls it on every tick."""
        written = 0
        for run_id in list(self._backlog):
            backlog = self._backlog.get(run_id)
            if not backlog or not self.breaker.allows():
                continue
            pending = list(backlog)
            try:
                await self.breaker.call(functools.partial(self._write, run_id, pending))
            except Exception:  # still down: the next tick tries again
                continue
            if self._backlog.get(run_id) is backlog and len(backlog) == len(pending):
                self._backlog.pop(run_id, None)
            else:  # appended meanwhile: keep what came after what was written
                for _ in pending:
                    if backlog:
                        backlog.popleft()
            written += 1
        return written

    def _keep_back(self, run_id: str, event: Event) -> None:
        backlog = self._backlog.get(run_id)
        if backlog is None:
            backlog = self._backlog[run_id] = deque(maxlen=self.max_events_per_run)
            if len(self._backlog) > _MAX_TRACKED_RUNS:
                self._backlog.pop(next(iter(self._backlog)))  # the oldest run's backlog
        backlog.append(event)

    async def _write(self, run_id: str, events: Sequence[Event]) -> int:
        """XADD ``events`` in order (those at or below the stream's top are skipped);
        returns the highest seq this call added."""
        args: list[Any] = [self.max_events_per_run, max(1, round(self.ttl * 1000))]
        for event in events:
            args += [int(event["seq"]), json.dumps(event, separators=(",", ":"))]
        added, _ = await self._append(keys=[self._key(run_id)], args=args)
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
            # events this replica appended for a run it does not execute (a sweep's final one,
            # perhaps kept locally only) are in its mirror
            for event in self._mirrored_after(run_id, cursor):
                cursor = int(event["seq"])
                yield event
                if event.get("type") == _FINAL:
                    return
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

    def _mirrored_after(self, run_id: str, cursor: int) -> list[Event]:
        events = self.local.buffered_after(run_id, cursor)
        if not events or int(events[0]["seq"]) != cursor + 1:
            return []
        return events

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
