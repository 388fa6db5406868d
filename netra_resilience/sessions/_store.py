"""Session store: a primary backend with a fallback, versioned write-back after an outage.

Two kinds of data: *records* (``get``/``put``/``delete``: one value per key, newest version
wins) and *logs* (``append``/``entries``: a conversation's turns, each an immutable entry with
a unique id). A log is never rewritten, only appended to, so an outage can never make a write
replace turns it did not see: write-back and reads merge the two backends' entries by id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from netra_resilience.circuit_breaker import (
    BACKEND_UNAVAILABLE,
    BackendBreaker,
    CircuitState,
    CircuitStateChange,
)
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError, NetraError
from netra_resilience.outcome import Outcome
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import Seconds, duration, integer


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored version of a session.

    ``version`` orders writes (microseconds of wall time, strictly increasing per store), so a
    backend keeps a record only when it is newer than the one it holds: that is what stops a
    replayed outage write from overwriting a later one. ``data is None`` is a *tombstone*: the
    session was deleted at ``version``, and older writes must not bring it back.
    ``expires_at`` is wall time in seconds since the epoch (``None`` = never).
    """

    key: str
    version: int
    data: bytes | None
    expires_at: float | None = None

    @property
    def deleted(self) -> bool:
        return self.data is None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def ttl(self, now: float) -> float | None:
        """Seconds left (``None`` = no expiry); zero or less means already expired."""
        return None if self.expires_at is None else self.expires_at - now


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """One entry of a session log (a conversation turn), immutable once appended.

    ``id`` is unique per key and sorts in append order: 17 digits of the store's version
    (wall-clock microseconds) then the appending store's random node id, so two replicas
    appending in the same microsecond never collide. The same entry written twice (a timed-out
    append that Redis applied after all, then the fallback's write-back) is stored once.
    """

    key: str
    id: str
    data: bytes
    expires_at: float

    @property
    def version(self) -> int:
        """The wall-clock microseconds at which it was appended (the id's first 17 digits)."""
        return int(self.id[:VERSION_DIGITS])

    def expired(self, now: float) -> bool:
        return self.expires_at <= now


VERSION_DIGITS = 17
MAX_KEY_LENGTH = 200
"""Longest key accepted, in characters (the SQL column is ``String(255)``; a Redis prefix too)."""


class InvalidSessionKeyError(NetraError, ValueError):
    """The key cannot be stored (empty, too long, a NUL byte, an unencodable character).

    Raised before any backend is touched: a request's own bad key says nothing about the
    backends, so it never counts against their breakers nor degrades other users. Map it to
    a 4xx at the edge.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid session key: {problem}")
        self.problem = problem


def check_key(key: object) -> str:
    """``key`` if every backend can store it, else :class:`InvalidSessionKeyError`."""
    if not isinstance(key, str):
        raise InvalidSessionKeyError(f"must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidSessionKeyError("must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidSessionKeyError(f"longer than {MAX_KEY_LENGTH} characters")
    if "\x00" in key:
        raise InvalidSessionKeyError("contains a NUL byte")  # PostgreSQL text cannot hold one
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSessionKeyError("contains a lone surrogate") from None
    return key


@runtime_checkable
class SessionBackend(Protocol):
    """Where sessions live: Redis, a SQL table, memory. Versioned, compare-and-set writes.

    A backend may also carry ``unavailable``, an outcome predicate saying which of its errors
    mean it is down (Redis's and SQLAlchemy's backends do): the breaker a store builds for it
    counts those, and otherwise only connection errors and timeouts.
    """

    async def load(self, key: str) -> SessionRecord | None:
        """The stored record (tombstones included), or ``None`` if the key is unknown."""
        ...

    async def save(self, record: SessionRecord, now: float) -> bool:
        """Store ``record`` unless a record with the same or a newer version is there.

        ``now`` is the store's wall time (seconds since the epoch), for backends that expire
        keys relative to it (Redis ``PX``). Returns whether the record was stored. Must be
        atomic (one Lua script, one upsert statement).
        """
        ...

    async def append(self, entry: SessionEntry, now: float, keep: int) -> None:
        """Add ``entry`` to its key's log (nothing changes if that id is there already), then
        keep only the newest ``keep`` entries of that log. Must be atomic per call."""
        ...

    async def entries(self, key: str, limit: int) -> Sequence[SessionEntry]:
        """The newest ``limit`` entries of ``key``'s log (expired ones may be included),
        oldest first."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests right now (used by health checks)."""
        ...


@runtime_checkable
class FallbackSessionBackend(SessionBackend, Protocol):
    """A backend that can stand in for the primary and lists what it holds for write-back.

    Records written here wait as *pending* until the store has copied them to the primary;
    then they are marked *synced* and stay readable for a grace period, for processes that
    still read from the fallback because they have not yet noticed the primary is back.
    A newer write to a synced record makes it pending again. Log entries are pending from
    their append until written back, then synced the same way.
    """

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        """Up to ``limit`` pending records with ``key > after``, ordered by key."""
        ...

    async def has_pending(self) -> bool:
        """Whether any record or log entry is waiting to be written back."""
        ...

    async def pending_entries(
        self, *, after: tuple[str, str], limit: int
    ) -> Sequence[SessionEntry]:
        """Up to ``limit`` pending log entries with ``(key, id) > after``, in that order."""
        ...

    async def mark_entries_synced(self, entries: Sequence[SessionEntry], now: float) -> None:
        """Mark these entries written back at ``now``."""
        ...

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        """Mark ``key`` written back at ``now`` if it still holds ``version``."""
        ...

    async def purge_synced(self, before: float) -> int:
        """Delete records and entries synced before ``before``; returns how many."""
        ...


class SessionStoreUnavailableError(NetraError):
    """Neither the primary nor the fallback backend could serve the operation."""

    def __init__(self, message: str = "session store unavailable", *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one write-back pass did.

    ``moved``: records and log entries written to the primary. ``superseded``: records the
    primary already held in a newer version (a write after recovery), dropped. ``expired``:
    records and entries past their TTL, dropped. ``complete``: the pass reached the end
    (false when a backend failed midway; the rest stays in the fallback for the next pass).
    """

    moved: int = 0
    superseded: int = 0
    expired: int = 0
    complete: bool = True


async def write_back(
    primary: SessionBackend,
    fallback: FallbackSessionBackend,
    *,
    primary_breaker: BackendBreaker,
    fallback_breaker: BackendBreaker,
    now: float,
    batch: int,
    grace: float,
    keep: int,
) -> ReconcileReport:
    """One pass over the fallback's pending records in key order, then a purge.

    Each record goes to the primary with a compare-and-set on its version, then is marked
    synced only if the fallback still holds that same version. So a write that lands in the
    fallback during the pass is never lost, and an older outage write never overwrites a newer
    session (or resurrects a deleted one: deletions are tombstones with versions too). Synced
    records older than ``grace`` seconds are deleted at the end.
    """
    moved = superseded = expired = 0
    after = ""
    try:
        while True:
            rows = await fallback_breaker.call(
                functools.partial(fallback.pending, after=after, limit=batch)
            )
            for record in rows:
                if record.expired(now):
                    expired += 1
                elif await primary_breaker.call(functools.partial(primary.save, record, now)):
                    moved += 1
                else:
                    superseded += 1
                await fallback_breaker.call(
                    functools.partial(fallback.mark_synced, record.key, record.version, now)
                )
            if len(rows) < batch:
                break
            after = rows[-1].key
        entry_after = ("", "")
        while True:
            entries = await fallback_breaker.call(
                functools.partial(fallback.pending_entries, after=entry_after, limit=batch)
            )
            for entry in entries:
                if entry.expired(now):
                    expired += 1
                else:
                    await primary_breaker.call(functools.partial(primary.append, entry, now, keep))
                    moved += 1
            if entries:
                await fallback_breaker.call(
                    functools.partial(fallback.mark_entries_synced, entries, now)
                )
            if len(entries) < batch:
                break
            entry_after = (entries[-1].key, entries[-1].id)
        await fallback_breaker.call(functools.partial(fallback.purge_synced, now - grace))
    except Exception:
        return ReconcileReport(moved, superseded, expired, complete=False)
    return ReconcileReport(moved, superseded, expired, complete=True)


class StoreSync:
    """The state and write-back half of :class:`SessionStore` (which sets these attributes).

    ``_pending`` is true while the fallback may hold writes not yet written back: reads then
    consult both backends. ``_fallback_writes`` counts fallback writes, so a write-back pass
    that raced with a new one does not clear ``_pending``.
    """

    reconcile_interval: float
    sync_grace: float
    max_entries: int
    primary_breaker: BackendBreaker
    fallback_breaker: BackendBreaker | None
    last_reconcile: ReconcileReport | None
    _clock: Clock
    _primary: SessionBackend
    _fallback: FallbackSessionBackend | None
    _batch: int
    _pending: bool
    _fallback_writes: int
    _next_sync: float
    _sync_task: asyncio.Task[None] | None
    _reconcile_lock: asyncio.Lock

    async def reconcile(self) -> ReconcileReport:
        """Write back what the fallback holds to the primary now (also runs automatically)."""
        fallback, fallback_breaker = self._fallback, self.fallback_breaker
        if fallback is None or fallback_breaker is None:
            return ReconcileReport()
        # Only into a primary that the breaker routes reads to: records moved while reads
        # still went to the fallback would look missing until the breaker closed.
        if not await self.primary_breaker.probe_now():
            return ReconcileReport(complete=False)
        async with self._reconcile_lock:
            writes = self._fallback_writes
            report = await write_back(
                self._primary,
                fallback,
                primary_breaker=self.primary_breaker,
                fallback_breaker=fallback_breaker,
                now=self._wall(),
                batch=self._batch,
                grace=self.sync_grace,
                keep=self.max_entries,
            )
            if report.complete and writes == self._fallback_writes:
                self._pending = False
            self.last_reconcile = report
            return report

    @property
    def pending(self) -> bool:
        """Whether outage writes may still wait in the fallback (reads then consult both)."""
        return self._pending

    def _wall(self) -> float:
        return self._clock.now().timestamp()

    def _on_primary_state(
        self, _old: CircuitState, new: CircuitState, _change: CircuitStateChange
    ) -> None:
        # Closed again (its probe passed, or health closed it): write back what the outage left.
        if new is CircuitState.CLOSED and self._fallback is not None:
            self._pending = True
            self._next_sync = 0.0
            self._maybe_sync()

    def _maybe_sync(self) -> None:
        if self._sync_task is not None or self._fallback is None:
            return
        now = self._clock.monotonic()
        if now < self._next_sync:
            return
        interval = self.primary_breaker.retry_interval if self._pending else self.reconcile_interval
        self._next_sync = now + interval
        self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        try:
            fallback, fallback_breaker = self._fallback, self.fallback_breaker
            if fallback is None or fallback_breaker is None or not self.primary_breaker.available:
                return
            if not self._pending:
                if not await fallback_breaker.call(fallback.has_pending):
                    return
                self._pending = True
            await self.reconcile()
        except Exception:
            return  # the breakers recorded it; the next due sync tries again
        finally:
            self._sync_task = None


T = TypeVar("T")
Operation = Callable[["SessionBackend"], Awaitable[T]]
"""One call on whichever backend the store routes it to."""


def _newest(a: SessionRecord | None, b: SessionRecord | None) -> SessionRecord | None:
    if a is None or (b is not None and b.version > a.version):
        return b
    return a


def _union(
    a: Sequence[SessionEntry], b: Sequence[SessionEntry], *, limit: int
) -> list[SessionEntry]:
    """Both backends' entries of one log, each id once, oldest first, the newest ``limit``."""
    merged = {entry.id: entry for entry in a}
    for entry in b:
        merged.setdefault(entry.id, entry)
    return [merged[i] for i in sorted(merged)][-limit:]


def _raise_cancellation(*results: object) -> None:
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            raise result


class StoreRouting(StoreSync):
    """The routing half of :class:`SessionStore`: each call to the primary, or the fallback."""

    dependency: str
    name: str

    def _mark(
        self,
        context: ResilienceContext | None,
        reason: DegradationReason,
        dependency: str | None = None,
    ) -> None:
        ctx = context if context is not None else current_context()
        if ctx is not None:
            ctx.degradation.mark(dependency or self.dependency, reason)

    def _usable_fallback(self) -> BackendBreaker | None:
        """The fallback's breaker when there is a fallback and it takes calls now."""
        breaker = self.fallback_breaker
        return breaker if breaker is not None and breaker.allows() else None

    async def _read(
        self,
        read: Operation[T],
        merge: Callable[[T, T], T],
        context: ResilienceContext | None,
        *,
        operation: str,
        logs: bool,
        retry_if: Callable[[T], bool],
        retry: bool = True,
    ) -> T:
        """A read from the primary; from the fallback when the primary fails or is skipped;
        from both, merged, while outage writes may still wait in the fallback.

        ``logs``: the data is a log, so an answer from one backend alone may lack entries the
        other holds; it is marked ``<name>=partial``.
        """
        primary = self.primary_breaker
        error: Exception | None = None
        if primary.allows():
            self._maybe_sync()
            if self._pending and self._fallback is not None:
                return await self._read_both(read, merge, context, operation=operation, logs=logs)
            try:
                return await primary.call(functools.partial(read, self._primary))
            except Exception as exc:
                error = exc
        result = await self._from_fallback(read, context, operation, error)
        skipped = error is None  # the breaker was open: its probe may have closed it since
        if (
            retry
            and skipped
            and retry_if(result)
            and (primary.available or (primary.probing and await primary.probe_now()))
        ):
            # The primary is back (or may be: wait for the bounded probe, once), and its
            # write-back may already have moved the data there: read it the normal way.
            return await self._read(
                read, merge, context, operation=operation, logs=logs, retry_if=retry_if, retry=False
            )
        if logs:
            self._mark(context, DegradationReason.PARTIAL, self.name)
        return result

    async def _read_both(
        self,
        read: Operation[T],
        merge: Callable[[T, T], T],
        context: ResilienceContext | None,
        *,
        operation: str,
        logs: bool,
    ) -> T:
        assert self._fallback is not None
        fallback_breaker = self._usable_fallback()
        if fallback_breaker is None:
            try:
                alone = await self.primary_breaker.call(functools.partial(read, self._primary))
            except Exception as exc:
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation=operation) from exc
            if logs:  # entries written during the outage are out of sight
                self._mark(context, DegradationReason.PARTIAL, self.name)
            return alone
        primary, fallback = await asyncio.gather(
            self.primary_breaker.call(functools.partial(read, self._primary)),
            fallback_breaker.call(functools.partial(read, self._fallback)),
            return_exceptions=True,
        )
        _raise_cancellation(primary, fallback)
        if isinstance(primary, BaseException):
            if isinstance(fallback, BaseException):
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation=operation) from fallback
            self._mark(context, DegradationReason.FALLBACK_DATABASE)
            if logs:
                self._mark(context, DegradationReason.PARTIAL, self.name)
            return fallback
        if isinstance(fallback, BaseException):
            if logs:
                self._mark(context, DegradationReason.PARTIAL, self.name)
            return primary
        return merge(primary, fallback)

    async def _write(
        self, write: Operation[object], context: ResilienceContext | None, operation: str
    ) -> None:
        """To the primary, else the fallback; stored nowhere: ``<name>=not_stored`` and a
        :class:`SessionStoreUnavailableError` (the caller must tell the user)."""
        error: Exception | None = None
        if self.primary_breaker.allows():
            self._maybe_sync()
            try:
                await self.primary_breaker.call(functools.partial(write, self._primary))
                return
            except Exception as exc:
                error = exc
        try:
            await self._from_fallback(
                functools.partial(self._write_fallback, write), context, operation, error
            )
        except SessionStoreUnavailableError:
            self._mark(context, DegradationReason.NOT_STORED, self.name)
            raise

    async def _write_fallback(self, write: Operation[object], fallback: SessionBackend) -> None:
        self._pending = True
        self._fallback_writes += 1
        await write(fallback)

    async def _from_fallback(
        self,
        op: Operation[T],
        context: ResilienceContext | None,
        operation: str,
        error: Exception | None,
    ) -> T:
        breaker = self._usable_fallback()
        fallback = self._fallback
        if breaker is None or fallback is None:
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from error
        try:
            result = await breaker.call(functools.partial(op, fallback))
        except Exception as exc:
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from exc
        self._mark(context, DegradationReason.FALLBACK_DATABASE)
        return result


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def _load(key: str, backend: SessionBackend) -> SessionRecord | None:
    return await backend.load(key)


async def _entries(key: str, limit: int, backend: SessionBackend) -> list[SessionEntry]:
    return list(await backend.entries(key, limit))


def _missing(record: SessionRecord | None) -> bool:
    return record is None


def _always(_rows: object) -> bool:
    return True


def _queue_timeout_of(backend: SessionBackend | None) -> float:
    # An optional member, like ``unavailable``: how long the backend may queue a caller in
    # front of its pool before turning it away (SqlSessionBackend's PoolBulkhead deadline).
    value = getattr(backend, "queue_timeout", None)
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


def _check_deadline(
    owner: str, field: str, breaker: BackendBreaker, backend: SessionBackend | None
) -> None:
    deadline = _queue_timeout_of(backend)
    if deadline and breaker.timeout <= deadline:
        raise InvalidOptionsError(
            owner,
            field,
            f"timeout ({breaker.timeout} s) must exceed the backend's queue deadline "
            f"({deadline} s), or a full pool would count as the backend failing",
        )


def _unavailable_of(backend: SessionBackend) -> Callable[[Outcome[Any]], bool]:
    # An optional member (see SessionBackend): Redis and SQL backends name their own errors.
    predicate = getattr(backend, "unavailable", None)
    return predicate if callable(predicate) else BACKEND_UNAVAILABLE


class SessionStore(StoreRouting):
    """Sessions with a TTL: records (``get``/``put``/``delete``) and logs (``append``/``entries``).

    Calls go to ``primary`` (Redis) through its breaker, ``primary_breaker`` (a
    :class:`~netra_resilience.circuit_breaker.BackendBreaker`): bounded by its timeout,
    skipped at once while the primary is known to be down. Then they go to ``fallback``
    (PostgreSQL or SQLite) and mark ``<dependency>=fallback_database`` on the request's
    degradation. When the primary is back, what the fallback holds is written back
    (:meth:`reconcile`, automatic): for records the newest version wins and tombstones keep
    deleted sessions deleted; log entries are merged in by id. Until that finishes, reads
    consult both backends, so nothing written during the outage is invisible or served stale.
    Every ``reconcile_interval`` the store also looks for write-backs left by *other*
    processes. Written-back data stays readable in the fallback for ``sync_grace`` seconds,
    for processes that have not yet noticed the primary is back (each notices within the
    breaker's ``retry_interval``). With ``fallback=None`` the primary is the only store (e.g.
    the embedded SQLite default).

    **Conversations belong in logs.** A read-modify-write of a whole history through
    ``get``/``put`` loses turns across an outage: the fallback cannot see the turns only the
    primary holds, so the rewritten history is short, and its newer version wins. An
    :meth:`append` adds one immutable entry instead, so no write can ever drop another. A
    log read the fallback served alone may lack the primary's entries: it is marked
    ``<name>=partial`` (``sessions=partial``). A write that neither backend took raises
    :class:`SessionStoreUnavailableError` and marks ``<name>=not_stored``: tell the user.

    Pass the breaker every user of that Redis (or database) shares as ``primary_breaker`` /
    ``fallback_breaker``. Without one, the store builds its own on the backend's ``ping``,
    configured by ``primary_timeout`` (default 0.25 s) and ``fallback_timeout`` (2 s), each
    plus the backend's queue deadline (below), ``retry_interval`` (1 s) and
    ``failure_threshold`` (3); those options are refused next to a breaker they would
    configure. Only failures that mean a backend is unhealthy count
    (connection errors, timeouts): an invalid key is refused before any backend is called
    (:class:`InvalidSessionKeyError`), and a fallback that queues callers with a deadline
    (``queue_timeout``, as :class:`SqlSessionBackend` does) gets that deadline added to its
    breaker's timeout, so a full pool turns callers away as a bulkhead rejection (neutral)
    rather than as a timeout (a failure). ``clock`` and ``telemetry`` reach those breakers.

    Versions are wall-clock microseconds (strictly increasing per store): across processes,
    "newest wins" is as good as the hosts' clock sync. Data that lived only in the primary is
    not readable while it is down, and is gone if the primary loses it: run Redis with AOF
    persistence (``appendonly yes``; a SIGKILL then loses no acknowledged write).
    """

    def __init__(
        self,
        primary: SessionBackend,
        fallback: FallbackSessionBackend | None = None,
        *,
        dependency: str = "redis",
        name: str = "sessions",
        ttl: Seconds = 3600.0,
        max_entries: int = 100,
        tombstone_ttl: Seconds = 86_400.0,
        primary_breaker: BackendBreaker | None = None,
        fallback_breaker: BackendBreaker | None = None,
        primary_timeout: Seconds | None = None,
        fallback_timeout: Seconds | None = None,
        retry_interval: Seconds | None = None,
        failure_threshold: int | None = None,
        reconcile_interval: Seconds = 30.0,
        reconcile_batch: int = 200,
        sync_grace: Seconds = 10.0,
        serializer: Callable[[Any], bytes] = _dumps,
        deserializer: Callable[[bytes], Any] = json.loads,
        clock: Clock | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        owner = type(self).__name__
        self.dependency = dependency
        if not isinstance(name, str) or not name:
            raise InvalidOptionsError(owner, "name", f"must be a non-empty string, got {name!r}")
        self.name = name
        self.ttl = duration(owner, "ttl", ttl)
        self.max_entries = integer(owner, "max_entries", max_entries)
        self.tombstone_ttl = duration(owner, "tombstone_ttl", tombstone_ttl)
        self.reconcile_interval = duration(owner, "reconcile_interval", reconcile_interval)
        self._batch = integer(owner, "reconcile_batch", reconcile_batch)
        self.sync_grace = duration(owner, "sync_grace", sync_grace, allow_zero=True)
        self._clock = clock or SYSTEM_CLOCK
        self._primary = primary
        self._fallback = fallback
        self._serialize = serializer
        self._deserialize = deserializer
        for field, value, breaker in (
            ("primary_timeout", primary_timeout, primary_breaker),
            ("fallback_timeout", fallback_timeout, fallback_breaker),
        ):
            if value is not None and breaker is not None:
                raise InvalidOptionsError(owner, field, "configures a breaker the store builds")
        builds_one = primary_breaker is None or (fallback is not None and fallback_breaker is None)
        for field, value in (
            ("retry_interval", retry_interval),
            ("failure_threshold", failure_threshold),
        ):
            if value is not None and not builds_one:
                raise InvalidOptionsError(owner, field, "configures a breaker the store builds")
        if fallback is None and fallback_breaker is not None:
            raise InvalidOptionsError(owner, "fallback_breaker", "needs a fallback backend")
        shared: dict[str, Any] = {"clock": self._clock, "telemetry": telemetry}
        if retry_interval is not None:
            shared["retry_interval"] = retry_interval
        if failure_threshold is not None:
            shared["failure_threshold"] = failure_threshold
        # The store closes only the breakers it built; shared ones belong to their owner.
        self._owned: list[BackendBreaker] = []
        # A backend that queues callers with a deadline (``queue_timeout``) gets that wait on
        # top of its breaker's timeout: a full pool turns callers away as a bulkhead
        # rejection (not counted), never as a timeout (counted as the backend failing).
        if primary_breaker is None:
            work = (
                0.25
                if primary_timeout is None
                else duration(owner, "primary_timeout", primary_timeout)
            )
            primary_breaker = BackendBreaker(
                primary.ping,
                name=dependency,
                timeout=work + _queue_timeout_of(primary),
                should_handle=_unavailable_of(primary),
                **shared,
            )
            self._owned.append(primary_breaker)
        else:
            _check_deadline(owner, "primary_breaker", primary_breaker, primary)
        if fallback is not None and fallback_breaker is None:
            work = (
                2.0
                if fallback_timeout is None
                else duration(owner, "fallback_timeout", fallback_timeout)
            )
            fallback_breaker = BackendBreaker(
                fallback.ping,
                name=f"{dependency}_fallback",
                timeout=work + _queue_timeout_of(fallback),
                should_handle=_unavailable_of(fallback),
                **shared,
            )
            self._owned.append(fallback_breaker)
        elif fallback_breaker is not None:
            _check_deadline(owner, "fallback_breaker", fallback_breaker, fallback)
        self.primary_breaker = primary_breaker
        self.fallback_breaker = fallback_breaker
        self._unsubscribe = primary_breaker.add_state_listener(self._on_primary_state)
        # Unknown at start: another process may have left outage writes behind.
        self._pending = fallback is not None
        self._fallback_writes = 0
        self._next_sync = 0.0
        self._sync_task: asyncio.Task[None] | None = None
        self._reconcile_lock = asyncio.Lock()
        self._last_version = 0
        self._node = secrets.token_hex(4)  # entry ids stay unique across replicas
        self.last_reconcile: ReconcileReport | None = None

    # -- public API ------------------------------------------------------------------------
    async def get(self, key: str, *, context: ResilienceContext | None = None) -> Any | None:
        """The session's value, or ``None`` when unknown, deleted or expired."""
        key = check_key(key)
        record = await self._read(
            functools.partial(_load, key),
            _newest,
            context,
            operation="get",
            logs=False,
            retry_if=_missing,
        )
        if record is None or record.data is None or record.expired(self._wall()):
            return None
        return self._deserialize(record.data)

    async def put(
        self,
        key: str,
        value: Any,
        *,
        ttl: Seconds | None = None,
        context: ResilienceContext | None = None,
    ) -> None:
        """Store ``value`` for ``ttl`` seconds (default: the store's ``ttl``)."""
        key = check_key(key)
        seconds = self.ttl if ttl is None else duration(type(self).__name__, "ttl", ttl)
        data = self._serialize(value)
        now = self._wall()
        record = SessionRecord(key, self._version(now), data, now + seconds)
        await self._write(functools.partial(self._save_on, record), context, "put")

    async def delete(self, key: str, *, context: ResilienceContext | None = None) -> None:
        """Delete the session (a versioned tombstone, so no older write brings it back).
        Logs are not deleted: their entries expire."""
        key = check_key(key)
        now = self._wall()
        tombstone = SessionRecord(key, self._version(now), None, now + self.tombstone_ttl)
        await self._write(functools.partial(self._save_on, tombstone), context, "delete")

    async def append(
        self,
        key: str,
        value: Any,
        *,
        ttl: Seconds | None = None,
        context: ResilienceContext | None = None,
    ) -> None:
        """Append ``value`` to ``key``'s log, kept ``ttl`` seconds (default: the store's
        ``ttl``); the log keeps its newest ``max_entries``. Raises
        :class:`SessionStoreUnavailableError` (marked ``<name>=not_stored``) when neither
        backend stored it."""
        key = check_key(key)
        seconds = self.ttl if ttl is None else duration(type(self).__name__, "ttl", ttl)
        data = self._serialize(value)
        now = self._wall()
        entry_id = f"{self._version(now):0{VERSION_DIGITS}d}{self._node}"
        entry = SessionEntry(key, entry_id, data, now + seconds)
        await self._write(functools.partial(self._append_on, entry), context, "append")

    async def entries(
        self, key: str, *, limit: int | None = None, context: ResilienceContext | None = None
    ) -> list[Any]:
        """The newest ``limit`` (default ``max_entries``) values of ``key``'s log, oldest
        first; ``[]`` for an unknown key. Marked ``<name>=partial`` when only one backend
        could be read while the other may hold entries."""
        key = check_key(key)
        count = self.max_entries if limit is None else integer(type(self).__name__, "limit", limit)
        rows = await self._read(
            functools.partial(_entries, key, count),
            functools.partial(_union, limit=count),
            context,
            operation="entries",
            logs=True,
            retry_if=_always,
        )
        now = self._wall()
        return [self._deserialize(entry.data) for entry in rows if not entry.expired(now)]

    async def check_primary(self) -> None:
        """Health check (``async () -> None``, raises on failure) of the primary backend."""
        async with self._clock.timeout(self.primary_breaker.timeout):
            await self._primary.ping()

    async def check_fallback(self) -> None:
        """Health check of the fallback (a critical database fails readiness through this)."""
        if self._fallback is None or self.fallback_breaker is None:
            return
        async with self._clock.timeout(self.fallback_breaker.timeout):
            await self._fallback.ping()

    async def check(self) -> None:
        """Health check of the store as a whole: raises only if neither backend answers."""
        try:
            await self.check_primary()
        except Exception:
            if self._fallback is None:
                raise
            await self.check_fallback()

    async def aclose(self) -> None:
        """Stop background work (write-back, the probes of breakers it built). Backends and
        shared breakers are closed by their owner."""
        self._unsubscribe()
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for breaker in self._owned:
            await breaker.aclose()

    # -- internals -------------------------------------------------------------------------
    async def _save_on(self, record: SessionRecord, backend: SessionBackend) -> bool:
        return await backend.save(record, self._wall())

    async def _append_on(self, entry: SessionEntry, backend: SessionBackend) -> None:
        await backend.append(entry, self._wall(), self.max_entries)

    def _version(self, now: float) -> int:
        version = max(int(now * 1_000_000), self._last_version + 1)
        self._last_version = version
        return version

    def __repr__(self) -> str:
        return (
            f"SessionStore(primary={self.primary_breaker!r}, "
            f"fallback={self.fallback_breaker!r}, pending={self._pending})"
        )
