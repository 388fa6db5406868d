"""Test helpers: a fake clock, a recording listener, constant randomness.

No test needs to sleep in real time: :class:`FakeClock` moves only on :meth:`FakeClock.advance`,
records every sleep, and fires real asyncio timeouts (so a timeout still surfaces as
``TimeoutError`` and a caller's cancel as ``CancelledError``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TypeVar

from netra_resilience.telemetry import TelemetryEvent

T = TypeVar("T")

__all__ = [
    "FakeClock",
    "RecordingListener",
    "advance_until_done",
    "constant_random",
]


_Target = asyncio.Future[None] | asyncio.Timeout | Callable[[], object]


class _Entry:
    __slots__ = ("cancelled", "target")

    def __init__(self, target: _Target) -> None:
        self.target = target
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self, loop: asyncio.AbstractEventLoop) -> None:
        target = self.target
        if isinstance(target, asyncio.Future):
            if not target.done():
                target.set_result(None)
        elif not isinstance(target, asyncio.Timeout):
            self.cancelled = True  # a callback runs once
            target()
        elif not target.expired():
            try:
                target.reschedule(loop.time())
            except RuntimeError:  # already left its block
                return


class _FakeTimeout:
    """``async with clock.timeout(s)``: a real ``asyncio.Timeout`` fired by the fake clock."""

    __slots__ = ("_clock", "_entry", "_seconds", "_tm")

    def __init__(self, clock: FakeClock, seconds: float | None) -> None:
        self._clock = clock
        self._seconds = seconds
        self._tm: asyncio.Timeout | None = None
        self._entry: _Entry | None = None

    async def __aenter__(self) -> asyncio.Timeout:
        tm = asyncio.timeout(None)
        self._tm = tm
        await tm.__aenter__()
        if self._seconds is not None:
            self._clock.timeouts.append(self._seconds)
            if self._seconds <= 0:
                tm.reschedule(asyncio.get_running_loop().time())
            else:
                self._entry = self._clock._push(self._clock.monotonic() + self._seconds, tm)
        return tm

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._entry is not None:
            self._entry.cancelled = True
        assert self._tm is not None
        await self._tm.__aexit__(exc_type, exc, tb)


class FakeClock:
    """A :class:`~netra_resilience.clock.Clock` whose time moves only on :meth:`advance`.

    * ``sleeps`` lists every requested sleep (assert backoff sequences exactly);
    * ``timeouts`` lists every armed timeout;
    * ``advance(s)`` wakes sleepers and fires timeouts in deadline order, letting the event
      loop run after each step.
    """

    settle_rounds = 12

    def __init__(
        self, start: float = 1000.0, wall: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    ) -> None:
        self._now = float(start)
        self._start = float(start)
        self._wall = wall
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []
        self.timeouts: list[float] = []

    # -- Clock protocol ---------------------------------------------------------------
    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._wall + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = self._push(self._now + seconds, fut)
        try:
            await fut
        finally:
            entry.cancelled = True

    def timeout(self, seconds: float | None) -> _FakeTimeout:
        return _FakeTimeout(self, seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> _Entry:
        """Run ``callback`` once the fake time has moved ``seconds`` on (``.cancel()`` it)."""
        return self._push(self._now + max(seconds, 0.0), callback)

    # -- control ---------------------------------------------------------------------
    def _push(self, deadline: float, target: _Target) -> _Entry:
        entry = _Entry(target)
        heapq.heappush(self._heap, (deadline, next(self._seq), entry))
        return entry

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

    @property
    def pending(self) -> int:
        """Sleeps and timeouts still waiting on this clock."""
        return sum(1 for _, _, entry in self._heap if not entry.cancelled)

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    async def settle(self) -> None:
        """Let ready tasks run (a few loop iterations) without moving time."""
        for _ in range(self.settle_rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing everything due on the way, in order."""
        if seconds < 0:
            raise ValueError("FakeClock.advance() cannot go backwards")
        target = self._now + seconds
        loop = asyncio.get_running_loop()
        await self.settle()
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > target:
                break
            deadline, _, entry = heapq.heappop(self._heap)
            self._now = max(self._now, deadline)
            entry.fire(loop)
            await self.settle()
        self._now = target
        await self.settle()


async def advance_until_done(
    clock: FakeClock,
    awaitable: Awaitable[T],
    *,
    max_steps: int = 100_000,
    io_wait: float = 0.05,
) -> T:
    """Run ``awaitable``, jumping the fake clock to each next deadline until it completes.

    When nothing waits on the fake clock, the awaitable is waiting on real I/O (a loopback
    server): that is awaited for up to ``io_wait`` real seconds per step (it returns as soon as
    the awaitable finishes; it never waits for a backoff or a breaker).
    """
    task = asyncio.ensure_future(awaitable)
    try:
        for _ in range(max_steps):
            await clock.settle()
            if task.done():
                return task.result()
            deadline = clock.next_deadline()
            if deadline is None:
                await asyncio.wait({task}, timeout=io_wait)
            else:
                await clock.advance(max(deadline - clock.monotonic(), 0.0))
        raise RuntimeError("advance_until_done: awaitable did not finish within max_steps")
    finally:
        if not task.done():
            task.cancel()


def constant_random(value: float = 0.5) -> Callable[[], float]:
    """A ``random`` that always returns ``value`` (makes jitter deterministic)."""
    if not 0.0 <= value < 1.0:
        raise ValueError("constant_random value must be in [0, 1)")
    return lambda: value


class RecordingListener:
    """A telemetry listener that keeps every event, for ordered assertions."""

    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []

    def on_event(self, event: TelemetryEvent) -> None:
        self.events.append(event)

    def names(self, *, strategy: str | None = None) -> list[str]:
        return [e.name for e in self.events if strategy is None or e.source.strategy == strategy]

    def named(self, name: str) -> list[TelemetryEvent]:
        return [e for e in self.events if e.name == name]

    def clear(self) -> None:
        self.events.clear()

    def __len__(self) -> int:
        return len(self.events)
