"""How a :class:`SessionStore` routes calls between primary and fallback, and writes back."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..clock import Clock
from ..context import ResilienceContext, current_context
from ..degradation import DegradationReason
from ._gate import BackendGate
from ._reconcile import ReconcileReport, write_back
from ._record import (
    FallbackSessionBackend,
    SessionBackend,
    SessionRecord,
    SessionStoreUnavailableError,
)

T = TypeVar("T")


def _newest(a: SessionRecord | None, b: SessionRecord | None) -> SessionRecord | None:
    if a is None or (b is not None and b.version > a.version):
        return b
    return a


class StoreRouting:
    """The state and routing half of :class:`SessionStore` (which sets these attributes).

    ``_pending`` is true while the fallback may hold writes not yet written back: reads then
    consult both backends. ``_fallback_writes`` counts fallback writes, so a write-back pass
    that raced with a new one does not clear ``_pending``.
    """

    dependency: str
    reconcile_interval: float
    sync_grace: float
    primary_gate: BackendGate
    fallback_gate: BackendGate
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
        fallback = self._fallback
        if fallback is None:
            return ReconcileReport()
        # Only into a primary that the gate routes reads to: records moved while reads still
        # went to the fallback would look missing until the gate closed.
        if not await self.primary_gate.probe_now():
            return ReconcileReport(complete=False)
        async with self._reconcile_lock:
            writes = self._fallback_writes
            report = await write_back(
                self._primary,
                fallback,
                primary_gate=self.primary_gate,
                fallback_gate=self.fallback_gate,
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

    def _mark(self, context: ResilienceContext | None, reason: DegradationReason) -> None:
        ctx = context if context is not None else current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, reason)

    async def _load(self, key: str, context: ResilienceContext | None) -> SessionRecord | None:
        if self.primary_gate.allows():
            self._maybe_sync()
            if self._pending and self._fallback is not None:
                return await self._load_both(key, context)
            try:
                return await self.primary_gate.call(functools.partial(self._primary.load, key))
            except Exception as exc:
                return await self._from_fallback(
                    functools.partial(self._load_fallback, key), context, "get", exc
                )
        record = await self._from_fallback(
            functools.partial(self._load_fallback, key), context, "get", None
        )
        if record is None and self.primary_gate.probing and await self.primary_gate.probe_now():
            # A miss while the primary may be back: its write-back may already have moved
            # the session there. Worth waiting for the (bounded) probe, once.
            return await self._load(key, context)
        return record

    async def _load_fallback(self, key: str) -> SessionRecord | None:
        assert self._fallback is not None
        return await self._fallback.load(key)

    async def _load_both(self, key: str, context: ResilienceContext | None) -> SessionRecord | None:
        assert self._fallback is not None
        if not self.fallback_gate.allows():
            try:
                return await self.primary_gate.call(functools.partial(self._primary.load, key))
            except Exception as exc:
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation="get") from exc
        primary, fallback = await asyncio.gather(
            self.primary_gate.call(functools.partial(self._primary.load, key)),
            self.fallback_gate.call(functools.partial(self._fallback.load, key)),
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
        if self.primary_gate.allows():
            self._maybe_sync()
            try:
                await self.primary_gate.call(
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
        if self._fallback is None or not self.fallback_gate.allows():
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from error
        try:
            result = await self.fallback_gate.call(fn)
        except Exception as exc:
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from exc
        self._mark(context, DegradationReason.FALLBACK_DATABASE)
        return result

    def _on_primary_recovered(self) -> None:
        if self._fallback is not None:
            self._pending = True
            self._next_sync = 0.0
            self._maybe_sync()

    def _maybe_sync(self) -> None:
        if self._sync_task is not None or self._fallback is None:
            return
        now = self._clock.monotonic()
        if now < self._next_sync:
            return
        interval = self.primary_gate.retry_interval if self._pending else self.reconcile_interval
        self._next_sync = now + interval
        self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        try:
            fallback = self._fallback
            if fallback is None or not self.primary_gate.available:
                return
            if not self._pending:
                if not await self.fallback_gate.call(fallback.has_pending):
                    return
                self._pending = True
            await self.reconcile()
        except Exception:
            return  # the gates recorded it; the next due sync tries again
        finally:
            self._sync_task = None
