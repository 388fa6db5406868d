"""Session store: a primary backend with a fallback, versioned write-back after an outage."""

from __future__ import annotations

import asyncio
import functools
import json
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

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests right now (used by health checks)."""
        ...


@runtime_checkable
class FallbackSessionBackend(SessionBackend, Protocol):
    """A backend that can stand in for the primary and lists what it holds for write-back.

    Records written here wait as *pending* until the store has copied them to the primary;
    then they are marked *synced* and stay readable for a grace period, for processes that
    still read from the fallback because they have not yet noticed the primary is back.
    A newer write to a synced record makes it pending again.
    """

    async def pending(self, *, after: str, limit: int) -> Sequence[SessionRecord]:
        """Up to ``limit`` pending records with ``key > after``, ordered by key."""
        ...

    async def has_pending(self) -> bool:
        """Whether any record is waiting to be written back."""
        ...

    async def mark_synced(self, key: str, version: int, now: float) -> None:
        """Mark ``key`` written back at ``now`` if it still holds ``version``."""
        ...

    async def purge_synced(self, before: float) -> int:
        """Delete records synced before ``before``; returns how many."""
        ...


class SessionStoreUnavailableError(NetraError):
    """Neither the primary nor the fallback backend could serve the operation."""

    def __init__(self, message: str = "session store unavailable", *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one write-back pass did.

    ``moved``: records written to the primary. ``superseded``: records the primary already
    held in a newer version (a write after recovery), dropped. ``expired``: records past their
    TTL, dropped. ``complete``: the pass reached the end (false when a backend failed midway;
    the rest stays in the fallback for the next pass).
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


def _newest(a: SessionRecord | None, b: SessionRecord | None) -> SessionRecord | None:
    if a is None or (b is not None and b.version > a.version):
        return b
    return a


class StoreRouting(StoreSync):
    """The routing half of :class:`SessionStore`: each call to the primary, or the fallback."""

    dependency: str

    def _mark(self, context: ResilienceContext | None, reason: DegradationReason) -> None:
        ctx = context if context is not None else current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, reason)

    def _usable_fallback(self) -> BackendBreaker | None:
        """The fallback's breaker when there is a fallback and it takes calls now."""
        breaker = self.fallback_breaker
        return breaker if breaker is not None and breaker.allows() else None

    async def _load(self, key: str, context: ResilienceContext | None) -> SessionRecord | None:
        primary = self.primary_breaker
        if primary.allows():
            self._maybe_sync()
            if self._pending and self._fallback is not None:
                return await self._load_both(key, context)
            try:
                return await primary.call(functools.partial(self._primary.load, key))
            except Exception as exc:
                return await self._from_fallback(
                    functools.partial(self._load_fallback, key), context, "get", exc
                )
        record = await self._from_fallback(
            functools.partial(self._load_fallback, key), context, "get", None
        )
        if record is None and primary.probing and await primary.probe_now():
            # A miss while the primary may be back: its write-back may already have moved
            # the session there. Worth waiting for the (bounded) probe, once.
            return await self._load(key, context)
        return record

    async def _load_fallback(self, key: str) -> SessionRecord | None:
        assert self._fallback is not None
        return await self._fallback.load(key)

    async def _load_both(self, key: str, context: ResilienceContext | None) -> SessionRecord | None:
        assert self._fallback is not None
        fallback_breaker = self._usable_fallback()
        if fallback_breaker is None:
            try:
                return await self.primary_breaker.call(functools.partial(self._primary.load, key))
            except Exception as exc:
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation="get") from exc
        primary, fallback = await asyncio.gather(
            self.primary_breaker.call(functools.partial(self._primary.load, key)),
            fallback_breaker.call(functools.partial(self._fallback.load, key)),
            return_exceptions=True,
        )
        if isinstance(primary, BaseException):
            if isinstance(fallback, BaseException):
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation="get") from fallback
            self._mark(context, DegradationReason.FALLBACK_DATABASE)
            return fallback
        # The fallback failing here costs nothing visible: the primary answered.
        return _newest(primary, None if isinstance(fallback, BaseException) else fallback)

    async def _save(self, record: SessionRecord, context: ResilienceContext | None) -> None:
        error: Exception | None = None
        if self.primary_breaker.allows():
            self._maybe_sync()
            try:
                await self.primary_breaker.call(
                    functools.partial(self._primary.save, record, self._wall())
                )
                return
            except Exception as exc:
                error = exc
        await self._from_fallback(
            functools.partial(self._save_fallback, record), context, "put", error
        )

    async def _save_fallback(self, record: SessionRecord) -> None:
        assert self._fallback is not None
        self._pending = True
        self._fallback_writes += 1
        await self._fallback.save(record, self._wall())

    async def _from_fallback(
        self,
        fn: Callable[[], Awaitable[T]],
        context: ResilienceContext | None,
        operation: str,
        error: Exception | None,
    ) -> T:
        breaker = self._usable_fallback()
        if breaker is None:
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from error
        try:
            result = await breaker.call(fn)
        except Exception as exc:
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from exc
        self._mark(context, DegradationReason.FALLBACK_DATABASE)
        return result


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _unavailable_of(backend: SessionBackend) -> Callable[[Outcome[Any]], bool]:
    # An optional member (see SessionBackend): Redis and SQL backends name their own errors.
    predicate = getattr(backend, "unavailable", None)
    return predicate if callable(predicate) else BACKEND_UNAVAILABLE


class SessionStore(StoreRouting):
    """get / put / delete sessions with a TTL.

    Calls go to ``primary`` (Redis) through its breaker, ``primary_breaker`` (a
    :class:`~netra_resilience.circuit_breaker.BackendBreaker`): bounded by its timeout,
    skipped at once while the primary is known to be down. Then they go to ``fallback``
    (PostgreSQL or SQLite) and mark ``<dependency>=fallback_database`` on the request's
    degradation. When the primary is back,
    what the fallback holds is written back (:meth:`reconcile`, automatic): newest version
    wins, tombstones keep deleted sessions deleted. Until that finishes, reads consult both
    backends, so nothing written during the outage is invisible or served stale. Every
    ``reconcile_interval`` the store also looks for write-backs left by *other* processes.
    Written-back records stay readable in the fallback for ``sync_grace`` seconds, for
    processes that have not yet noticed the primary is back (each notices within the
    breaker's ``retry_interval``). With ``fallback=None`` the primary is the only store (e.g.
    the embedded SQLite default).

    Pass the breaker every user of that Redis (or database) shares as ``primary_breaker`` /
    ``fallback_breaker``. Without one, the store builds its own on the backend's ``ping``,
    configured by ``primary_timeout`` (default 0.25 s), ``fallback_timeout`` (2 s),
    ``retry_interval`` (1 s) and ``failure_threshold`` (3); those options are refused next
    to a breaker they would configure. ``clock`` and ``telemetry`` reach those breakers.

    Versions are wall-clock microseconds (strictly increasing per store): across processes,
    "newest wins" is as good as the hosts' clock sync. Sessions that lived only in the primary
    are not readable while it is down (and are gone if it loses its data: give Redis
    persistence if that matters); the guarantee is for writes made during the outage.
    """

    def __init__(
        self,
        primary: SessionBackend,
        fallback: FallbackSessionBackend | None = None,
        *,
        dependency: str = "redis",
        ttl: Seconds = 3600.0,
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
        self.ttl = duration(owner, "ttl", ttl)
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
        if primary_breaker is None:
            primary_breaker = BackendBreaker(
                primary.ping,
                name=dependency,
                timeout=0.25 if primary_timeout is None else primary_timeout,
                should_handle=_unavailable_of(primary),
                **shared,
            )
            self._owned.append(primary_breaker)
        if fallback is not None and fallback_breaker is None:
            fallback_breaker = BackendBreaker(
                fallback.ping,
                name=f"{dependency}_fallback",
                timeout=2.0 if fallback_timeout is None else fallback_timeout,
                should_handle=_unavailable_of(fallback),
                **shared,
            )
            self._owned.append(fallback_breaker)
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
        self.last_reconcile: ReconcileReport | None = None

    # -- public API ------------------------------------------------------------------------
    async def get(self, key: str, *, context: ResilienceContext | None = None) -> Any | None:
        """The session's value, or ``None`` when unknown, deleted or expired."""
        record = await self._load(key, context)
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
        seconds = self.ttl if ttl is None else duration(type(self).__name__, "ttl", ttl)
        data = self._serialize(value)
        now = self._wall()
        await self._save(SessionRecord(key, self._version(now), data, now + seconds), context)

    async def delete(self, key: str, *, context: ResilienceContext | None = None) -> None:
        """Delete the session (a versioned tombstone, so no older write brings it back)."""
        now = self._wall()
        tombstone = SessionRecord(key, self._version(now), None, now + self.tombstone_ttl)
        await self._save(tombstone, context)

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
    def _version(self, now: float) -> int:
        version = max(int(now * 1_000_000), self._last_version + 1)
        self._last_version = version
        return version

    def __repr__(self) -> str:
        return (
            f"SessionStore(primary={self.primary_breaker!r}, "
            f"fallback={self.fallback_breaker!r}, pending={self._pending})"
        )
