"""One loop timer for all in-flight calls of a fixed-duration timeout.

A timeout strategy with a fixed duration hands out deadlines in the order calls start, so a
FIFO holds them sorted for free. One ``loop.call_at`` handle is kept armed at or before the
oldest deadline; when it fires it cancels the calls that are due and re-arms for the next
one. A call costs an entry and an append instead of a ``TimerHandle`` (heap push, cancel,
later heap cleanup): the per-call timer is the most expensive part of a timeout otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import Callback
from netra_resilience.timeout._timer import run_with_loop_timer

__all__ = ["DeadlineQueue", "run_with_deadline_queue"]

# asyncio runs a handle when loop.time() is within its clock resolution of the deadline
# (BaseEventLoop._clock_resolution); treat entries that close as due, or the timer would
# re-arm for the same instant until the clock ticks over.
_EPSILON = max(1e-6, time.get_clock_info("monotonic").resolution)


class _Entry:
    __slots__ = ("deadline", "done", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False
        self.done = False


class DeadlineQueue:
    """In-order deadlines of one event loop, served by a single loop timer."""

    __slots__ = ("_armed", "_armed_at", "_entries", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._entries: deque[_Entry] = deque()
        self._armed = False
        self._armed_at = 0.0  # when the armed timer fires (meaningful while _armed)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, task: asyncio.Task[Any], deadline: float) -> _Entry | None:
        """Queue a deadline; ``None`` if it is earlier than the newest (caller arms its own)."""
        entries = self._entries
        if entries and deadline < entries[-1].deadline:
            return None
        if self._armed and deadline < self._armed_at:
            return None  # empty queue, timer still armed for later: it would fire too late
        entry = _Entry(task, deadline)
        entries.append(entry)
        if not self._armed:
            self._armed = True
            self._armed_at = deadline
            self.loop.call_at(deadline, self._fire)
        return entry

    def release(self, entry: _Entry) -> None:
        """The call finished: drop it and every finished entry at the head."""
        entry.done = True
        entries = self._entries
        while entries and entries[0].done:
            entries.popleft()
        # The armed timer is left alone: when it fires it finds nothing due and re-arms for the
        # head (or stays off when empty), so back-to-back calls never cancel and re-arm it.

    def _fire(self) -> None:
        now = self.loop.time() + _EPSILON
        entries = self._entries
        while entries:
            head = entries[0]
            if head.done:
                entries.popleft()
            elif head.deadline <= now:
                entries.popleft()
                head.fired = True
                head.task.cancel()
            else:
                self._armed_at = head.deadline
                self.loop.call_at(head.deadline, self._fire)
                return
        self._armed = False


async def run_with_deadline_queue(
    queue: DeadlineQueue,
    seconds: float,
    callback: Callback,
    context: ResilienceContext,
    state: Any,
) -> Outcome[Any] | None:
    """Like ``run_with_loop_timer`` (``None`` = our expiry), on the shared queue's timer."""
    loop = queue.loop
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a timeout must run inside an asyncio task")
    entry = queue.add(task, loop.time() + seconds)
    if entry is None:  # out of order (a shorter per-call duration): one timer of its own
        return await run_with_loop_timer(None, seconds, callback, context, state)
    cancelling = task.cancelling()
    try:
        outcome = await callback(context, state)
    except asyncio.CancelledError:
        if entry.fired and task.uncancel() <= cancelling:
            return None  # only our timer asked for this cancellation: it is our expiry
        raise
    except BaseException:
        if entry.fired:
            task.uncancel()
        raise
    finally:
        queue.release(entry)
    if entry.fired:  # the callback swallowed our cancel and finished: keep its result
        task.uncancel()
    return outcome
