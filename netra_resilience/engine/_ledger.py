"""Run ledger: every accepted run recorded with its owner replica and a lease, so no run is
silently lost when its replica dies.

* :class:`RunLedger` is the protocol (``InMemoryRunLedger`` here; ``SqlRunLedger`` in
  ``netra_resilience.integrations.sqlalchemy`` for SQLite/PostgreSQL shared by replicas).
* :class:`RunLeases` is one replica's side: an engine layer records each run it starts, the
  log it wraps (``leases.log``) records each run's end once its final event is in the log
  every replica reads (a final event kept only locally: once written back), and
  :meth:`RunLeases.tick` (every ``lease / 3`` seconds; :meth:`RunLeases.run` loops it)
  renews this replica's leases and sweeps the expired leases of
  dead replicas: for each run it wins, it ends the run's event log with a final
  ``agent_completed`` ``status: interrupted`` (and a user-facing notice) - ``EventLog.end``,
  at the log's own top, retried next tick while the log cannot be written - so a client that
  resumes gets an end instead of waiting forever. A replica whose lease lapsed while it
  still ran the run finds the log ended (``Stored.ENDED``) and writes nothing more.

Leases are in wall-clock seconds (``clock.now()``), the time replicas share; keep replicas'
clocks in sync (NTP) to well within the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.engine._event_log import (
    FINAL_EVENT,
    EndableEventLog,
    Event,
    ReplayUnavailableError,
    Stored,
)
from netra_resilience.engine._run import Engine, EngineLayer, RunEvents, RunRequest
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.validation import duration

_LOG = logging.getLogger("netra_resilience.runs")

RUNNING = "running"
FINISHED = "finished"
INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = (
    "The server working on this answer stopped before it finished. Please ask again."
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    run_id: str
    owner: str
    status: str
    lease_until: float


@runtime_checkable
class RunLedger(Protocol):
    """Where accepted runs are recorded. Times are wall-clock seconds since the epoch."""

    async def accept(self, run_id: str, owner: str, lease_until: float) -> None:
        """Record a new ``running`` run owned by ``owner`` (again: no change, no error)."""
        ...

    async def renew(self, owner: str, lease_until: float) -> int:
        """Extend every running run of ``owner``; returns how many."""
        ...

    async def finish(self, run_id: str, owner: str, status: str) -> bool:
        """End ``run_id`` with ``status`` if ``owner`` still holds it; returns whether it did."""
        ...

    async def expired(self, now: float, limit: int) -> Sequence[LedgerEntry]:
        """Running runs whose lease ended before ``now`` (oldest first)."""
        ...

    async def claim(self, run_id: str, owner: str, now: float, lease_until: float) -> bool:
        """Take over ``run_id`` if it is still running with an expired lease (atomic: of two
        replicas sweeping at once, one wins)."""
        ...

    async def get(self, run_id: str) -> LedgerEntry | None: ...

    async def adopt(self, run_id: str, owner: str, lease_until: float) -> None:
        """Record ``run_id`` as ``running`` under ``owner`` whoever held it: a durable engine
        executes the run here now (it recovered it, or started it)."""
        ...


class InMemoryRunLedger:
    """A ledger in this process (tests, one replica that restarts in place)."""

    def __init__(self) -> None:
        self._runs: dict[str, LedgerEntry] = {}

    async def accept(self, run_id: str, owner: str, lease_until: float) -> None:
        self._runs.setdefault(run_id, LedgerEntry(run_id, owner, RUNNING, lease_until))

    async def renew(self, owner: str, lease_until: float) -> int:
        mine = [e for e in self._runs.values() if e.owner == owner and e.status == RUNNING]
        for entry in mine:
            self._runs[entry.run_id] = LedgerEntry(entry.run_id, owner, RUNNING, lease_until)
        return len(mine)

    async def finish(self, run_id: str, owner: str, status: str) -> bool:
        entry = self._runs.get(run_id)
        if entry is None or entry.owner != owner or entry.status != RUNNING:
            return False
        self._runs[run_id] = LedgerEntry(run_id, owner, status, entry.lease_until)
        return True

    async def expired(self, now: float, limit: int) -> Sequence[LedgerEntry]:
        due = [e for e in self._runs.values() if e.status == RUNNING and e.lease_until < now]
        return sorted(due, key=lambda e: e.lease_until)[:limit]

    async def claim(self, run_id: str, owner: str, now: float, lease_until: float) -> bool:
        entry = self._runs.get(run_id)
        if entry is None or entry.status != RUNNING or entry.lease_until >= now:
            return False
        self._runs[run_id] = LedgerEntry(run_id, owner, RUNNING, lease_until)
        return True

    async def get(self, run_id: str) -> LedgerEntry | None:
        return self._runs.get(run_id)

    async def adopt(self, run_id: str, owner: str, lease_until: float) -> None:
        self._runs[run_id] = LedgerEntry(run_id, owner, RUNNING, lease_until)


RecoverRun = Callable[[LedgerEntry], Awaitable[bool]]
"""A durable engine's recovery of a run this replica took over from a dead one: ``True``
when the run goes on (here or on another replica), ``False`` to end it ``interrupted``."""

_OWNER = "RunLeases"
ACCEPT_TIMEOUT = 3.0
"""Seconds a run may wait to be recorded before it starts unrecorded (retried each tick)."""


class RunLeases:
    """One replica's leases on the runs it executes, and the sweep of dead replicas' runs.

    ``owner`` names this replica (default: random per process, so a restarted replica never
    mistakes a dead one's runs for its own). ``lease``: seconds a run stays owned without a
    renewal; a replica that stops renewing (killed, frozen) loses its runs after it.
    Failures of the ledger never fail a run: the run goes on unrecorded (logged).

    ``recover``: with durable execution (``integrations.dbos.DurableEngine.recover``), each
    run taken over is first offered to it; a run it resumes is not interrupted, and the
    replica that executes it next adopts it in the ledger (see :meth:`accept`).
    """

    def __init__(
        self,
        ledger: RunLedger,
        event_log: EndableEventLog,
        *,
        owner: str | None = None,
        lease: float = 15.0,
        clock: Clock | None = None,
        sweep_limit: int = 100,
        recover: RecoverRun | None = None,
    ) -> None:
        if not isinstance(ledger, RunLedger):
            raise InvalidOptionsError(_OWNER, "ledger", "must be a RunLedger")
        if not isinstance(event_log, EndableEventLog):
            raise InvalidOptionsError(
                _OWNER, "event_log", "must be an EventLog with end() (an EndableEventLog)"
            )
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise InvalidOptionsError(_OWNER, "owner", "must be a non-empty string")
        if recover is not None and not callable(recover):
            raise InvalidOptionsError(_OWNER, "recover", "must be an async callable")
        self.ledger = ledger
        self.event_log = event_log
        self.owner = owner or f"replica-{secrets.token_hex(6)}"
        self.lease = duration(_OWNER, "lease", lease)
        self.clock = clock or SYSTEM_CLOCK
        self.sweep_limit = sweep_limit
        self.call_timeout = min(self.lease / 3, 2.0)
        # A run starts only once recorded (or after this bound): a run left unrecorded dies
        # unseen with its replica. Longer than the other calls: a burst of accepts queues in
        # front of the database pool (a 0.33 s bound lost 24 of 100 runs under load).
        self.accept_timeout = max(self.call_timeout, ACCEPT_TIMEOUT)
        # A durable engine's recovery asks its database twice; off any run's path, so it may
        # take as long as an accept (too short a bound interrupts a run it was resuming).
        self.recover_timeout = self.accept_timeout
        self.recover = recover
        self.interrupted = 0
        self.resumed = 0
        self._unrecorded: dict[str, bool] = {}  # run -> adopt, for a failed accept: retried
        self._ending: dict[str, None] = {}  # runs taken over, their final event not yet logged
        # Runs whose final event only this replica holds (the shared log was unreachable):
        # still running in the ledger - if this replica dies, a sweep ends them - until the
        # write-back shares the final event. run -> its final status.
        self.unshared: dict[str, str] = {}

    def _wall(self) -> float:
        return self.clock.now().timestamp()

    @property
    def layer(self) -> EngineLayer:
        """The engine layer recording each run: ``wrap_engine(..., layers=[leases.layer])``."""
        return EngineLayer(_LeasedRuns, leases=self)

    @property
    def log(self) -> EndableEventLog:
        """The event log to give the engine (``wrap_engine(..., event_log=leases.log)``): a
        run is finished in the ledger only once its final event is in the log, so a replica
        dying in between leaves it to the sweep instead of losing its end."""
        return _FinishingLog(self.event_log, self)

    async def accept(self, run_id: str, *, adopt: bool = False) -> bool:
        """Record a run starting here; ``adopt``: a durable run, owned by whichever replica
        executes it now (a recovered one arrives with another replica's claim)."""
        record = self.ledger.adopt if adopt else self.ledger.accept
        try:
            async with self.clock.timeout(self.accept_timeout):
                await record(run_id, self.owner, self._wall() + self.lease)
        except Exception as exc:  # the run goes on; the next tick records it
            _LOG.warning("run ledger unavailable (accept): %s", type(exc).__name__)
            self._unrecorded[run_id] = adopt
        return True

    async def refusal(self, run_id: str, error: ReplayUnavailableError) -> ReplayUnavailableError:
        """What to tell a client the log cannot resume: a run the log does not know but the
        ledger has running is not unknown - its events have not reached the shared log yet
        (its replica kept them locally, or died before writing them; the sweep will end
        it there): the client tries again shortly."""
        if error.reason != "unknown":
            return error
        try:
            async with self.clock.timeout(self.call_timeout):
                entry = await self.ledger.get(run_id)
        except Exception:
            return error
        if entry is None or entry.status != RUNNING:
            return error
        return ReplayUnavailableError(f"run {run_id!r} is not in the shared log yet", "unavailable")

    async def finish(self, run_id: str, status: str) -> None:
        self._unrecorded.pop(run_id, None)
        try:
            async with self.clock.timeout(self.call_timeout):
                await self.ledger.finish(run_id, self.owner, status)
        except Exception as exc:
            _LOG.warning("run ledger unavailable (finish): %s", type(exc).__name__)

    async def tick(self) -> int:
        """Renew this replica's leases, then sweep expired ones; returns runs interrupted."""
        now = self._wall()
        # renewal first: nothing else this tick does may let this replica's own leases lapse
        await self.ledger.renew(self.owner, now + self.lease)
        for run_id, adopt in list(self._unrecorded.items()):  # idempotent: a late one is harmless
            record = self.ledger.adopt if adopt else self.ledger.accept
            await record(run_id, self.owner, self._wall() + self.lease)
            self._unrecorded.pop(run_id, None)
        # A shared log keeps what it could not write (e.g. a final event during a Redis
        # hiccup) until a later append carries it; a run that has ended has none: push it.
        write_back = getattr(self.event_log, "write_back", None)
        if callable(write_back):
            with contextlib.suppress(Exception):
                await write_back()
        backlogged = getattr(self.event_log, "backlogged", None)
        for run_id, status in list(self.unshared.items()):
            if not callable(backlogged) or not backlogged(run_id):
                del self.unshared[run_id]
                await self.finish(run_id, status)
        swept = 0
        # runs this replica took over but could not end yet (their log was unreachable): it
        # holds their leases meanwhile, so they are not swept again elsewhere
        for run_id in list(self._ending):
            swept += await self._end_taken(run_id)
        for entry in await self.ledger.expired(self._wall(), self.sweep_limit):
            if entry.owner == self.owner:
                continue  # ours (a renewal raced the sweep): still running here
            now = self._wall()
            if not await self.ledger.claim(entry.run_id, self.owner, now, now + self.lease):
                continue  # another replica took it
            if await self._recovered(entry):
                continue  # goes on under durable execution; its executor adopts it
            self._ending[entry.run_id] = None
            swept += await self._end_taken(entry.run_id)
        self.interrupted += swept
        return swept

    async def _recovered(self, entry: LedgerEntry) -> bool:
        recover = self.recover
        if recover is None:
            return False
        try:
            async with self.clock.timeout(self.recover_timeout):
                resumed = await recover(entry)
        except Exception as exc:  # cannot hand it over: it ends interrupted, not lost
            _LOG.warning("durable recovery failed: %s", type(exc).__name__)
            return False
        self.resumed += bool(resumed)
        return bool(resumed)

    async def _end_taken(self, run_id: str) -> int:
        interrupted = await self._interrupt(run_id)
        if interrupted is None:
            return 0  # the next tick tries again
        self._ending.pop(run_id, None)
        # if this write is lost, a later sweep claims the run again and finds it ended
        await self.finish(run_id, INTERRUPTED if interrupted else FINISHED)
        return int(interrupted)

    async def _interrupt(self, run_id: str) -> bool | None:
        """End the run with a final ``interrupted`` event right after its last logged one,
        unless its log already ended (``False``); ``None`` when the log cannot be written now
        (tried again next tick: never a seq guessed from a stale top)."""
        event: dict[str, Any] = {
            "type": FINAL_EVENT,
            "run_id": run_id,
            "degraded": True,
            "degradation": {"replica": INTERRUPTED},
            "data": {
                "status": INTERRUPTED,
                "interrupted": True,
                "notice": INTERRUPTED_MESSAGE,
            },
        }
        try:
            async with self.clock.timeout(self.call_timeout):
                return await self.event_log.end(run_id, event) is not None
        except Exception as exc:
            _LOG.warning("event log unavailable (sweep): %s", type(exc).__name__)
            return None

    async def run(self) -> None:
        """Tick every ``lease / 3`` seconds until cancelled (a ledger error skips one tick)."""
        while True:
            try:
                await self.tick()
            except Exception as exc:
                _LOG.warning("run ledger sweep failed: %s", type(exc).__name__)
            await self.clock.sleep(self.lease / 3)


class _LeasedRuns:
    """The engine layer: a run is in the ledger from its start (its end: see ``RunLeases.log``)."""

    def __init__(self, app: Engine, *, leases: RunLeases) -> None:
        self.app = app
        self.leases = leases

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        await self.leases.accept(request.run_id, adopt=events.steps.durable)
        return await self.app(request, events)


class _FinishingLog:
    """An event log that ends a run in the ledger when the run's final event is stored."""

    def __init__(self, inner: EndableEventLog, leases: RunLeases) -> None:
        self.inner = inner
        self.leases = leases

    async def append(self, event: Event) -> Stored:
        stored = await self.inner.append(event)
        if event.get("type") == FINAL_EVENT:
            data = event.get("data") or {}
            status = "cancelled" if data.get("cancelled") else str(data.get("status", FINISHED))
            if stored is Stored.STORED:
                await _shielded(self.leases.finish(str(event["run_id"]), status))
            elif stored is Stored.LOCAL_ONLY:  # finished once the write-back shares it
                self.leases.unshared[str(event["run_id"])] = status
        return stored

    async def read(self, run_id: str, last_seq: int) -> list[Event]:
        try:
            return await self.inner.read(run_id, last_seq)
        except ReplayUnavailableError as exc:
            raise await self.leases.refusal(run_id, exc) from None

    async def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        try:
            async with contextlib.aclosing(self.inner.follow(run_id, last_seq)) as events:
                async for event in events:
                    yield event
        except ReplayUnavailableError as exc:
            raise await self.leases.refusal(run_id, exc) from None

    async def last_seq(self, run_id: str) -> int:
        return await self.inner.last_seq(run_id)

    async def end(self, run_id: str, event: Event) -> Event | None:
        return await self.inner.end(run_id, event)


async def _shielded(coro: Any) -> None:
    """Finish the ledger write even if the run is being cancelled (bounded by the ledger)."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.gather(task, return_exceptions=True)
        raise
