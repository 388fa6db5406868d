"""``RedisEventLog``: each run's events in one Redis Stream, so a client resumes on any replica.

    redis = redis_client("redis://cache:6379/0")
    log = RedisEventLog(redis, breaker=redis_breaker(redis))
    engine = wrap_engine(agent, event_log=log)           # every event: XADD, in order
    async for event in log.follow(run_id, last_seq): ... # XRANGE the missed ones, XREAD live

One stream per run (``prefix + run_id``), entry id ``<seq>-0``: a ``seq`` at or below the
stream's top is skipped (a re-sent event is never duplicated). A run's final event closes its
stream: nothing is added after it, whoever writes (the owner of a run whose lease lapsed while
it still ran gets ``Stored.ENDED``, and its own followers get the sweep's end instead of a
gap). A sweep ends another replica's run with :meth:`RedisEventLog.end`, one script that
appends the final event at the stream's real top + 1 (never at a seq guessed from this
replica's mirror, which Redis would refuse). A follower whose client holds events past the
top (kept only by the dead replica) gets the end right after them; so does one at the seq of
a sweep's end (``ended_by_sweep``): it may hold another event there, and a resume means it
has no end yet (a browser that had it reconnects once more, then gets 204). ``MAXLEN ~`` bounds a
stream and every append renews its TTL. Each event goes to Redis first, then to a local
:class:`InMemoryEventLog` mirror (what the clients connected here follow, at memory speed),
so a client never holds an event that a resume on another replica could miss. While the
shared Redis breaker is open (or a write fails) the event goes to the mirror alone at once,
``LOCAL_ONLY`` (the run is flagged ``events=local_only``), and is written back, in order,
with the next append that reaches Redis, so the shared stream never has a hole. A run whose
final event could only be kept locally is resumable on this replica alone (best-effort).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from redis.asyncio import Redis

from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.engine import (
    LOGGED_SEQ,
    Event,
    InMemoryEventLog,
    ReplayUnavailableError,
    Stored,
    ended_by_sweep,
)
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.integrations.redis._client import REDIS_ERRORS, checked_breaker
from netra_resilience.validation import duration, integer

__all__ = ["RedisEventLog"]

_OWNER = "RedisEventLog"
_FINAL = "agent_completed"
_MAX_TRACKED_RUNS = 10_000
_DOWN = "the shared event log is unavailable right now"

# The stream's top: its seq, and its JSON when it is a run's final event (field f): after a
# final event the stream takes nothing more, whoever writes (fencing a replica whose lease
# lapsed while it still ran the run: its events never land after the sweep's end).
_TOP = """
local function top(key)
  local entries = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #entries == 0 then return 0, false end
  local seq = tonumber(string.match(entries[1][1], '^(%d+)'))
  local fields = entries[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'f' then return seq, fields[2] end
  end
  return seq, false
end
"""

# KEYS[1] stream. ARGV: maxlen, ttl ms, then (seq, final 0/1, json) triples in seq order. A
# seq at or below the stream's top is skipped (already there). Returns the highest seq added
# (0 if none) and, when the stream already ended, the final event's JSON (nothing added).
_APPEND = (
    _TOP
    + """
local last, ended = top(KEYS[1])
if ended then return {0, ended} end
local added = 0
for i = 3, #ARGV, 3 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    if ARGV[i+1] == '1' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', ARGV[i+2], 'f', '1')
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', ARGV[i+2])
    end
    added, last = seq, seq
    if ARGV[i+1] == '1' then break end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {added, false}
"""
)

# KEYS[1] stream. ARGV: maxlen, ttl ms, the final event's JSON without its opening '{' and
# seq. Appends it at top + 1 unless the stream already ended: returns {seq, json} or {0, json}
# of the final event already there.
_END = (
    _TOP
    + """
local last, ended = top(KEYS[1])
if ended then return {0, ended} end
local seq = last + 1
local json = '{"seq":' .. seq .. ',' .. ARGV[3]
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'e', json, 'f', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {seq, json}
"""
)


def _seq_of(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-", 1)[0])


class _RunEnded(Exception):
    """The run's stream already ends with its final event (a sweep ended it elsewhere)."""

    def __init__(self, final: Event) -> None:
        super().__init__("the run's event log has already ended")
        self.final = final


def _is_final(fields: Any) -> bool:
    return b"f" in fields or "f" in fields


def _after(end: Event, cursor: int) -> Event:
    """The run's end for a client whose seqs go past it (kept only by a dead replica)."""
    return {**end, "seq": cursor + 1, LOGGED_SEQ: int(end["seq"])}


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
        # not `local or ...`: an empty InMemoryEventLog is falsy (it has a length)
        self.local = (
            local
            if local is not None
            else InMemoryEventLog(
                max_events_per_run=self.max_events_per_run,
                ttl=min(self.ttl, 3600.0),
                clock=self.breaker.clock,
            )
        )
        # run -> its events Redis has not got yet (written back, in order, with the next
        # append that reaches Redis)
        self._backlog: dict[str, deque[Event]] = {}
        self._append = client.register_script(_APPEND)
        self._end = client.register_script(_END)

    def _key(self, run_id: str) -> str:
        return self.prefix + run_id

    # -- writing -----------------------------------------------------------------------
    async def append(self, event: Event) -> Stored:
        run_id = str(event["run_id"])
        seq = int(event["seq"])
        local = self.local
        if local.finished(run_id):
            return Stored.ENDED if seq > await local.last_seq(run_id) else Stored.DUPLICATE
        if seq <= await local.last_seq(run_id):
            return Stored.DUPLICATE
        backlog = self._backlog.get(run_id, ())
        stored = Stored.LOCAL_ONLY
        breaker = self.breaker
        if breaker.allows():
            pending = [*backlog, event]
            try:
                added = await breaker.call(lambda: self._write(run_id, pending))
            except _RunEnded as ended:
                self._ended(ended.final)
                return Stored.ENDED
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

    def _ended(self, final: Event) -> None:
        """The stream already ended (another replica's sweep): this replica's followers of
        the run get that end, right after what they got, and nothing more is written."""
        self._backlog.pop(str(final["run_id"]), None)
        self.local.put_end(final)

    async def end(self, run_id: str, event: Event) -> Event | None:
        body = {k: v for k, v in event.items() if k != "seq"}
        body["run_id"] = run_id
        rest = json.dumps(body, separators=(",", ":"))[1:]  # the JSON after its '{'
        args: list[Any] = [self.max_events_per_run, max(1, round(self.ttl * 1000)), rest]
        if not self.breaker.allows():
            raise ReplayUnavailableError(_DOWN, "unavailable")
        try:
            seq, raw = await self.breaker.call(
                lambda: self._end(keys=[self._key(run_id)], args=args)
            )
        except Exception:  # not written (or not known to be): the caller tries again
            raise ReplayUnavailableError(_DOWN, "unavailable") from None
        if not int(seq):
            return None
        final: Event = json.loads(raw)
        return final

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
            except _RunEnded as ended:
                self._ended(ended.final)
            except Exception:  # still down: the next tick tries again
                continue
            else:
                self._settle_backlog(run_id, backlog, len(pending))
            written += 1
        return written

    def _settle_backlog(self, run_id: str, backlog: deque[Event], written: int) -> None:
        if self._backlog.get(run_id) is backlog and len(backlog) == written:
            self._backlog.pop(run_id, None)
        else:  # appended meanwhile: keep what came after what was written
            for _ in range(written):
                if backlog:
                    backlog.popleft()

    def backlogged(self, run_id: str) -> bool:
        """Whether events of ``run_id`` wait here to be written back to Redis."""
        return bool(self._backlog.get(run_id))

    def _keep_back(self, run_id: str, event: Event) -> None:
        backlog = self._backlog.get(run_id)
        if backlog is None:
            backlog = self._backlog[run_id] = deque(maxlen=self.max_events_per_run)
            if len(self._backlog) > _MAX_TRACKED_RUNS:
                self._backlog.pop(next(iter(self._backlog)))  # the oldest run's backlog
        backlog.append(event)

    async def _write(self, run_id: str, events: Sequence[Event]) -> int:
        """XADD ``events`` in order (those at or below the stream's top are skipped);
        returns the highest seq this call added. Raises :class:`_RunEnded` (nothing added)
        when the stream already holds the run's final event."""
        args: list[Any] = [self.max_events_per_run, max(1, round(self.ttl * 1000))]
        for event in events:
            final = "1" if event.get("type") == _FINAL else "0"
            args += [int(event["seq"]), final, json.dumps(event, separators=(",", ":"))]
        added, ended = await self._append(keys=[self._key(run_id)], args=args)
        if ended:
            raise _RunEnded(json.loads(ended))
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
        events, _, _ = await self._fetch(run_id, last_seq)
        return events

    async def _fetch(self, run_id: str, last_seq: int) -> tuple[list[Event], int, Event | None]:
        """The stream's events after ``last_seq``, its top seq, and its final event if the
        run has ended."""
        key = self._key(run_id)

        async def fetch() -> tuple[int, list[Any], list[Any]]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(key)
                pipe.xrange(key, min=f"{last_seq + 1}-0", max="+")
                pipe.xrevrange(key, count=1)
                exists, entries, top = await pipe.execute()
            return int(exists), entries, top

        if not self.breaker.allows():
            raise ReplayUnavailableError(_DOWN, "unavailable")
        try:
            exists, entries, top = await self.breaker.call(fetch)
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
        top_seq, end = 0, None
        if top:
            top_seq = _seq_of(top[0][0])
            if _is_final(top[0][1]):
                end = _decode(top[0][1])
        return events, top_seq, end

    def _mirrored(self, run_id: str, last_seq: int) -> bool:
        """Whether the mirror here holds the run from ``last_seq`` on (it runs here)."""
        if not self.local.knows(run_id):
            return False
        try:
            self.local.after(run_id, last_seq)
        except ReplayUnavailableError:
            return False
        return True

    async def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        cursor = last_seq
        if not self._mirrored(run_id, cursor):
            shared = self._follow_shared(run_id, cursor)
            try:
                async with contextlib.aclosing(shared):
                    async for event in shared:
                        cursor = int(event["seq"])
                        yield event
                return
            except ReplayUnavailableError as exc:
                # Redis died under a follower of a run this replica runs (its follow began
                # on Redis: the run's first event was not mirrored yet): every event after
                # the cursor is in the mirror (Redis first, then the mirror, or the mirror
                # alone once Redis fails), so it goes on here. Elsewhere: best-effort.
                if exc.reason != "unavailable" or not self._mirrored(run_id, cursor):
                    raise
        # this replica holds the run from the cursor on: follow it at memory speed
        async for event in self.local.follow(run_id, cursor):
            yield event

    async def _follow_shared(self, run_id: str, last_seq: int) -> AsyncGenerator[Event, None]:
        cursor = last_seq
        events, top, end = await self._fetch(run_id, cursor)
        for event in events:
            cursor = int(event["seq"])
            yield event
            if event.get("type") == _FINAL:
                return
        if end is not None:  # ended at or before the client's seq
            end_seq = int(end["seq"])
            if end_seq < cursor or (end_seq == cursor and ended_by_sweep(end)):
                yield _after(end, cursor)
            return
        # A client may hold events past the stream's top: those the replica that ran the run
        # kept only locally before it died. Read from the top, so the end a sweep appends
        # there still reaches it (right after what it has).
        position = min(cursor, top)
        key = self._key(run_id)
        block_ms = max(1, round(self.block * 1000))
        clock = self.breaker.clock
        while True:
            if not self.breaker.allows():
                raise ReplayUnavailableError(_DOWN, "unavailable")
            try:
                async with clock.timeout(self.block + self.breaker.timeout):
                    reply: Any = await self.client.xread(
                        {key: f"{position}-0"}, count=100, block=block_ms
                    )
            except REDIS_ERRORS:
                raise ReplayUnavailableError(_DOWN, "unavailable") from None
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    seq = position = _seq_of(entry_id)
                    final = _is_final(fields)
                    if seq <= cursor:  # the client has this seq already
                        if final:
                            yield _after(_decode(fields), cursor)
                            return
                        continue
                    if seq != cursor + 1:
                        raise ReplayUnavailableError(
                            f"run {run_id!r}: events after seq {cursor} were trimmed", "trimmed"
                        )
                    cursor = seq
                    event = _decode(fields)
                    yield event
                    if final or event.get("type") == _FINAL:
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
