"""``SessionStore``: sessions with TTL on a primary backend, a fallback while it is down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.sessions._gate import BackendGate
from netra_resilience.sessions._reconcile import ReconcileReport
from netra_resilience.sessions._record import FallbackSessionBackend, SessionBackend, SessionRecord
from netra_resilience.sessions._routing import StoreRouting
from netra_resilience.validation import Seconds, duration, integer


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class SessionStore(StoreRouting):
    """get / put / delete sessions with a TTL.

    Calls go to ``primary`` (Redis) through a :class:`BackendGate`: bounded by
    ``primary_timeout``, skipped at once while the primary is known to be down. Then they go to
    ``fallback`` (PostgreSQL or SQLite) and mark ``<dependency>=fallback_database`` on the
    request's degradation. When the primary is back, what the fallback holds is written back
    (:meth:`reconcile`, automatic): newest version wins, tombstones keep deleted sessions deleted.
    Until that finishes, reads consult both backends, so nothing written during the outage is
    invisible or served stale. Every ``reconcile_interval`` the store also looks for write-backs
    left by *other* processes. Written-back records stay readable in the fallback for
    ``sync_grace`` seconds, for processes that have not yet noticed the primary is back (each
    notices within ``retry_interval``). With ``fallback=None`` the primary is the only store
    (e.g. the embedded SQLite default).

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
        clock: Clock | None = None,
        primary_timeout: Seconds = 0.25,
        fallback_timeout: Seconds = 2.0,
        retry_interval: Seconds = 1.0,
        failure_threshold: int = 1,
        reconcile_interval: Seconds = 30.0,
        reconcile_batch: int = 200,
        sync_grace: Seconds = 10.0,
        serializer: Callable[[Any], bytes] = _dumps,
        deserializer: Callable[[bytes], Any] = json.loads,
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
        self.primary_gate = BackendGate(
            primary.ping,
            name=dependency,
            clock=self._clock,
            timeout=primary_timeout,
            failure_threshold=failure_threshold,
            retry_interval=retry_interval,
            on_recovered=self._on_primary_recovered,
        )
        self.fallback_gate = BackendGate(
            fallback.ping if fallback is not None else primary.ping,
            name=f"{dependency}_fallback",
            clock=self._clock,
            timeout=fallback_timeout,
            failure_threshold=failure_threshold,
            retry_interval=retry_interval,
        )
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
        async with self._clock.timeout(self.primary_gate.timeout):
            await self._primary.ping()

    async def check_fallback(self) -> None:
        """Health check of the fallback (a critical database fails readiness through this)."""
        if self._fallback is None:
            return
        async with self._clock.timeout(self.fallback_gate.timeout):
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
        """Stop background work (probes, write-back). Backends are closed by their owner."""
        task = self._sync_task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.primary_gate.aclose()
        await self.fallback_gate.aclose()

    # -- internals -------------------------------------------------------------------------
    def _version(self, now: float) -> int:
        version = max(int(now * 1_000_000), self._last_version + 1)
        self._last_version = version
        return version

    def __repr__(self) -> str:
        return (
            f"SessionStore(primary={self.primary_gate!r}, fallback={self.fallback_gate!r}, "
            f"pending={self._pending})"
        )
