"""Replay buffer: the events of recent runs by sequence number, so a client that reconnects
gets what it missed exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import NetraError

Event = Mapping[str, Any]


class ReplayUnavailableError(NetraError):
    """The run is unknown or expired, or events after ``last_seq`` were already dropped.

    The client cannot resume exactly-once and must restart or fetch the run's result.
    """


class _RunLog:
    __slots__ = ("changed", "events", "expires_at", "finished", "last_seq")

    def __init__(self, capacity: int, expires_at: float) -> None:
        self.events: deque[Event] = deque(maxlen=capacity)
        self.last_seq = 0
        self.expires_at = expires_at
        self.finished = False
        self.changed = asyncio.Event()


class ReplayBuffer:
    """Keeps each run's last ``max_events_per_run`` events for ``ttl`` seconds.

    Works with any event mapping carrying ``run_id`` and a per-run increasing ``seq`` (the
    engine's events do). It is an engine event observer (``notify``/``observe``), so
    ``run_events.add_observer(buffer)`` records a run. A reconnecting client asks for
    :meth:`events_after` its last ``seq`` (or :meth:`follow` to get the missed events and then
    the live ones): it gets each event exactly once, in order. Events with a ``seq`` at or
    below the last recorded one are ignored, so a re-sent event is never duplicated.
    """

    def __init__(
        self,
        *,
        max_events_per_run: int = 1000,
        max_runs: int = 10_000,
        ttl: float = 300.0,
        clock: Clock | None = None,
        final_types: Iterable[str] = ("agent_completed",),
    ) -> None:
        if max_events_per_run < 1 or max_runs < 1 or ttl <= 0:
            raise ValueError("ReplayBuffer bounds must be positive")
        self._capacity = max_events_per_run
        self._max_runs = max_runs
        self._ttl = ttl
        self._clock = clock or SYSTEM_CLOCK
        self._final = frozenset(final_types)
        self._runs: OrderedDict[str, _RunLog] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def append(self, event: Event) -> bool:
        """Record ``event``; ``False`` when it is a duplicate or out of order (ignored)."""
        run_id = str(event["run_id"])
        seq = int(event["seq"])
        now = self._clock.monotonic()
        log = self._live(run_id, now)
        if log is None:
            log = self._runs[run_id] = _RunLog(self._capacity, now + self._ttl)
            while len(self._runs) > self._max_runs:
                _, evicted = self._runs.popitem(last=False)
                evicted.changed.set()  # wake its followers: they report it unavailable
        if seq <= log.last_seq:
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

    def events_after(self, run_id: str, last_seq: int) -> list[Event]:
        """Every buffered event of ``run_id`` with ``seq > last_seq``, in order."""
        log = self._live(run_id, self._clock.monotonic())
        if log is None:
            raise ReplayUnavailableError(f"run {run_id!r} is unknown or expired")
        events = log.events
        if log.last_seq > last_seq and events and int(events[0]["seq"]) > last_seq + 1:
            raise ReplayUnavailableError(
                f"run {run_id!r}: events after seq {last_seq} were dropped (buffer bound)"
            )
        if not events or int(events[-1]["seq"]) <= last_seq:
            return []
        return [e for e in events if int(e["seq"]) > last_seq]

    def finished(self, run_id: str) -> bool:
        log = self._runs.get(run_id)
        return log is not None and log.finished

    async def follow(self, run_id: str, last_seq: int = 0) -> AsyncGenerator[Event, None]:
        """The missed events after ``last_seq``, then live ones, until the final event."""
        cursor = last_seq
        while True:
            log = self._live(run_id, self._clock.monotonic())
            if log is None:
                raise ReplayUnavailableError(f"run {run_id!r} is unknown or expired")
            waiter = log.changed
            for event in self.events_after(run_id, cursor):
                cursor = int(event["seq"])
                yield event
            if log.finished and cursor >= log.last_seq:
                return
            await waiter.wait()

    def purge(self) -> int:
        """Drop expired runs now (they are also dropped lazily); returns how many."""
        now = self._clock.monotonic()
        expired = [run for run, log in self._runs.items() if now >= log.expires_at]
        for run in expired:
            self._live(run, now)
        return len(expired)

    # -- engine EventObserver ----------------------------------------------------------
    def notify(self, event: Event) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # not a run event
            self.append(event)

    async def observe(self, event: Event) -> None:
        return None

__all__ = ['ReplayBuffer', 'ReplayUnavailableError']
