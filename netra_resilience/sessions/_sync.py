"""When a :class:`SessionStore` writes the fallback's outage writes back to the primary."""

from __future__ import annotations

import asyncio

from netra_resilience.clock import Clock
from netra_resilience.sessions._gate import BackendGate
from netra_resilience.sessions._reconcile import ReconcileReport, write_back
from netra_resilience.sessions._record import FallbackSessionBackend, SessionBackend


class StoreSync:
    """The state and write-back half of :class:`SessionStore` (which sets these attributes).

    ``_pending`` is true while the fallback may hold writes not yet written back: reads then
    consult both backends. ``_fallback_writes`` counts fallback writes, so a write-back pass
    that raced with a new one does not clear ``_pending``.
    """

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
