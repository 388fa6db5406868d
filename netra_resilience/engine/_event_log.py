"""Run event log: each run's events by ``seq``, so a client that reconnects (to this replica
or another) gets every event it missed exactly once, in order, then the live ones.

:class:`EventLog` is the protocol; :class:`InMemoryEventLog` is the one-process default and
the local mirror of the shared log (``RedisEventLog`` in ``netra_resilience.integrations.redis``).
:class:`RunLogWriter` is the engine's side: it appends one run's events in order without ever
holding the run up, and flags ``events=local_only`` when only this process could keep them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.degradation import Degradation, DegradationReason
from netra_resilience.exceptions import NetraError
from netra_resilience.validation import duration, integer

Event = Mapping[str, Any]

FINAL_EVENT = "agent_completed"
LOGGED_SEQ = "logged_seq"
"""Field of a run's final event delivered right after the client's own seq instead of at its
seq in the log - the client held events past the log's end (kept only by a replica that
died) or at a sweep's end: the event's seq in the log. Over SSE its id is ``<seq>.end``, so
a browser reconnecting with it is told the run has ended (204)."""
EVENTS_DEPENDENCY = "events"
"""The dependency name of the event log in degradation flags (``events=local_only``)."""


def ended_by_sweep(event: Event) -> bool:
    """Whether ``event`` is a final event another replica appended for a run it did not run
    (``RunLeases``' sweep: ``data.interrupted``). A client may hold a different event at its
    seq - one the dead replica kept only locally - so a resume at that seq still gets it."""
    data = event.get("data")
    return (
        event.get("type") == FINAL_EVENT
        and isinstance(data, Mapping)
        and data.get("interrupted") is True
    )


class ReplayUnavailableError(NetraError):
    """The run is unknown or expired, events after ``last_seq`` were already dropped, or the
    shared log cannot be read right now.

    The client cannot resume exactly-once and must restart or fetch the run's result.
    ``reason``: ``unknown`` (never seen or expired), ``trimmed`` (a bound dropped events the
    client still needs) or ``unavailable`` (the shared log is down: try again shortly).
    """

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


class Stored(StrEnum):
    """Where :meth:`EventLog.append` put an event."""

    STORED = "stored"
    """In the log every replica reads (for the in-memory log: the only log)."""
    LOCAL_ONLY = "local_only"
    """Only in this process (the shared log is down): a resume elsewhere is best-effort."""
    DUPLICATE = "duplicate"
    """A ``seq`` at or below the run's last one: ignored, so a re-sent event is never doubled."""
    ENDED = "ended"
    """The run's log already ends with its final event (another replica's sweep ended the
    run while this one still ran it): refused, nothing is kept after a run's end."""


@runtime_checkable
class EventLog(Protocol):
    """Where runs' events are kept for resuming. Events are mappings carrying ``run_id`` and
    a per-run ``seq`` rising by one (the engine's events do); the run ends with its
    ``agent_completed`` event."""

    async def append(self, event: Event) -> Stored:
        """Keep ``event``; never raises for an unavailable backend (``LOCAL_ONLY`` instead)."""
        ...

    async def read(self, run_id: str, last_seq: int) -> list[Event]:
        """The kept events of ``run_id`` with ``seq > last_seq``, in order.

        Raises :class:`ReplayUnavailableError` when the run is unknown or a gap follows
        ``last_seq`` (events dropped by a bound)."""
        ...

    def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        """The missed events after ``last_seq``, then live ones, until the final event."""
        ...

    async def last_seq(self, run_id: str) -> int:
        """The run's highest kept ``seq`` (0: unknown)."""
        ...


@runtime_checkable
class EndableEventLog(EventLog, Protocol):
    """An :class:`EventLog` in which another replica can end a run (``RunLeases``' sweep of a
    dead replica's runs needs one; ``InMemoryEventLog`` and ``RedisEventLog`` are)."""

    async def end(self, run_id: str, event: Event) -> Event | None:
        """Append ``event`` as the run's final event right after its last kept one (the
        event's own ``seq`` is ignored), in one step, unless the log already ends with a
        final event; returns the event as kept (with its ``seq``), or ``None``.

        For a replica ending another's run (the sweep). Raises
        :class:`ReplayUnavailableError` (``unavailable``) when the log cannot be written right
        now: a ``seq`` guessed from what this replica holds could hide the end behind the
        events a client already has, so the caller tries again later."""
        ...


class _RunLog:
    __slots__ = ("changed", "events", "expires_at", "finished", "last_seq")

    def __init__(self, capacity: int, expires_at: float) -> None:
        self.events: deque[Event] = deque(maxlen=capacity)
        self.last_seq = 0
        self.expires_at = expires_at
        self.finished = False
        self.changed = asyncio.Event()


_OWNER = "InMemoryEventLog"


class InMemoryEventLog:
    """Keeps each run's last ``max_events_per_run`` events for ``ttl`` seconds, in this process.

    Bounded three ways (events per run, runs, time); a bound that drops an event a client
    still needs is reported (:class:`ReplayUnavailableError`), never skipped silently.
    """

    def __init__(
        self,
        *,
        max_events_per_run: int = 1000,
        max_runs: int = 10_000,
        ttl: float = 300.0,
        clock: Clock | None = None,
        final_types: Iterable[str] = (FINAL_EVENT,),
    ) -> None:
        self._capacity = integer(_OWNER, "max_events_per_run", max_events_per_run, minimum=1)
        self._max_runs = integer(_OWNER, "max_runs", max_runs, minimum=1)
        self._ttl = duration(_OWNER, "ttl", ttl)
        self._clock = clock or SYSTEM_CLOCK
        self._final = frozenset(final_types)
        self._runs: OrderedDict[str, _RunLog] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def put(self, event: Event) -> bool:
        """Record ``event`` now; ``False`` when it is a duplicate or out of order (ignored)."""
        run_id = str(event["run_id"])
        seq = int(event["seq"])
        now = self._clock.monotonic()
        log = self._live(run_id, now)
        if log is None:
            log = self._runs[run_id] = _RunLog(self._capacity, now + self._ttl)
            while len(self._runs) > self._max_runs:
                _, evicted = self._runs.popitem(last=False)
                evicted.changed.set()  # wake its followers: they report it unavailable
        if seq <= log.last_seq or log.finished:
            return False
        log.events.append(event)
        log.last_seq = seq
        log.expires_at = now + self._ttl
        self._runs.move_to_end(run_id)
        if event.get("type") in self._final:
            log.finished = True
        changed, log.changed = log.changed, asyncio.Event()
        changed.set()
        return True

    def _live(self, run_id: str, now: float) -> _RunLog | None:
        log = self._runs.get(run_id)
        if log is not None and now >= log.expires_at:
            del self._runs[run_id]
            log.changed.set()
            return None
        return log

    def knows(self, run_id: str) -> bool:
        return self._live(run_id, self._clock.monotonic()) is not None

    def buffered_after(self, run_id: str, last_seq: int) -> list[Event]:
        """What is buffered after ``last_seq`` (possibly not contiguous with it); [] if unknown."""
        log = self._live(run_id, self._clock.monotonic())
        if log is None or log.last_seq <= last_seq:
            return []
        return [e for e in log.events if int(e["seq"]) > last_seq]

    def after(self, run_id: str, last_seq: int) -> list[Event]:
        """Every buffered event of ``run_id`` with ``seq > last_seq``, in order, or raise."""
        log = self._live(run_id, self._clock.monotonic())
        if log is None:
            raise ReplayUnavailableError(f"run {run_id!r} is unknown or expired")
        events = log.events
        if log.last_seq > last_seq and events and int(events[0]["seq"]) > last_seq + 1:
            raise ReplayUnavailableError(
                f"run {run_id!r}: events after seq {last_seq} were dropped (buffer bound)",
                "trimmed",
            )
        if not events or int(events[-1]["seq"]) <= last_seq:
            return []
        return [e for e in events if int(e["seq"]) > last_seq]

    def finished(self, run_id: str) -> bool:
        log = self._runs.get(run_id)
        return log is not None and log.finished

    def purge(self) -> int:
        """Drop expired runs now (they are also dropped lazily); returns how many."""
        now = self._clock.monotonic()
        expired = [run for run, log in self._runs.items() if now >= log.expires_at]
        for run in expired:
            self._live(run, now)
        return len(expired)

    def put_end(self, event: Event) -> None:
        """Keep ``event``, a run's final event written elsewhere, as this run's end: at its
        own ``seq``, or right after the events kept here when they already go past it (they
        were kept only here: the followers here must still get an end after them)."""
        log = self._live(str(event["run_id"]), self._clock.monotonic())
        if log is not None and log.finished:
            return
        if log is not None and int(event["seq"]) <= log.last_seq:
            event = {**event, "seq": log.last_seq + 1}
        self.put(event)

    # -- the EventLog protocol ---------------------------------------------------------
    async def append(self, event: Event) -> Stored:
        if self.put(event):
            return Stored.STORED
        if self.finished(str(event["run_id"])) and int(event["seq"]) > await self.last_seq(
            str(event["run_id"])
        ):
            return Stored.ENDED
        return Stored.DUPLICATE

    async def end(self, run_id: str, event: Event) -> Event | None:
        if self.finished(run_id):
            return None
        final = {**event, "run_id": run_id, "seq": await self.last_seq(run_id) + 1}
        self.put(final)
        return final

    async def read(self, run_id: str, last_seq: int) -> list[Event]:
        return self.after(run_id, last_seq)

    async def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        cursor = last_seq
        while True:
            log = self._live(run_id, self._clock.monotonic())
            if log is None:
                raise ReplayUnavailableError(f"run {run_id!r} is unknown or expired")
            waiter = log.changed
            for event in self.after(run_id, cursor):
                cursor = int(event["seq"])
                yield event
            if log.finished and cursor >= log.last_seq:
                return
            await waiter.wait()

    async def last_seq(self, run_id: str) -> int:
        log = self._live(run_id, self._clock.monotonic())
        return 0 if log is None else log.last_seq


class RunLogWriter:
    """Appends one run's events to an :class:`EventLog`, in ``seq`` order, off the run's path.

    An engine event observer: ``notify`` only queues. The first append the log could keep
    only locally marks ``events=local_only`` on the run's degradation (the client connected
    here still gets every event; a resume elsewhere is best-effort). :meth:`flush` waits,
    bounded, for the queue to drain when the run ends, so the final event is in the log
    before the run returns.
    """

    __slots__ = (
        "_degradation", "_first", "_idle", "_log", "_queue", "_ready", "_task", "appended",
        "ended", "local_only",
    )  # fmt: skip

    def __init__(
        self, log: EventLog, degradation: Degradation, first: asyncio.Event | None = None
    ) -> None:
        """``first`` is set once the run's first event is appended (or could not be)."""
        self._log = log
        self._degradation = degradation
        self._first = first
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.appended = 0
        self.local_only = 0
        self.ended = False
        """Another replica ended the run in the log (its lease lapsed): nothing more is kept."""

    def notify(self, event: Event) -> None:
        if self.ended:
            return
        self._queue.append(event)
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write_all())
        self._ready.set()

    async def observe(self, event: Event) -> None:
        return None

    async def _write_all(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._idle.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            event = queue[0]
            try:
                stored = await self._log.append(event)
            except Exception:  # a log must never break the run it records
                stored = Stored.LOCAL_ONLY
            if stored is Stored.LOCAL_ONLY:
                self.local_only += 1
                self._degradation.mark(EVENTS_DEPENDENCY, DegradationReason.LOCAL_ONLY)
            elif stored is not Stored.ENDED:
                self.appended += 1
            queue.popleft()
            if self._first is not None:
                self._first.set()
            if stored is Stored.ENDED:  # another replica ended the run: the log takes no more
                self.ended = True
                queue.clear()
            if (event.get("type") == FINAL_EVENT or self.ended) and not queue:
                self._idle.set()
                return

    async def drain(self, clock: Clock, within: float) -> None:
        """Wait at most ``within`` seconds until every queued event is appended, so the final
        event's status and flags include what the log could not share."""
        if self._idle.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with clock.timeout(within):
                await self._idle.wait()

    async def flush(self, clock: Clock, within: float) -> None:
        """Wait at most ``within`` seconds for the final event to be appended."""
        task = self._task
        if task is None or task.done():
            return
        try:
            async with clock.timeout(within):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
