"""Running a callback under one timer; ``None`` back means *our* timer expired.

Two implementations with the same signature, chosen once at build time:

* :func:`run_with_clock` uses ``clock.timeout()`` (any :class:`Clock`, e.g. ``FakeClock``).
* :func:`run_with_loop_timer` is for :class:`SystemClock`: one ``loop.call_at`` handle that
  cancels the task, plus the same ``cancelling()``/``uncancel()`` bookkeeping
  ``asyncio.timeout`` does (with Python 3.12's ``<=`` rule, so a pending cancel from before
  we started is not mistaken for ours). It skips the Timeout object, its state machine and
  the two awaited ``__aenter__``/``__aexit__`` coroutines: about half the cost of
  ``asyncio.timeout`` per call.

Caller cancellation stays a ``CancelledError`` in both: if anyone else also asked the task to
cancel, the cancel count stays above what it was when we started and we re-raise.
"""

from __future__ import annotations

import asyncio
from typing import Any

from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import Callback

__all__ = ["run_with_clock", "run_with_loop_timer"]


async def run_with_clock(
    clock: Clock, seconds: float, callback: Callback, context: ResilienceContext, state: Any
) -> Outcome[Any] | None:
    try:
        async with clock.timeout(seconds):
            return await callback(context, state)
    except TimeoutError:
        # The callback returns outcomes and never raises Exception subclasses, so a
        # TimeoutError here can only come from the timeout itself (its own expiry).
        return None


class _Expiry:
    """The timer callback: remembers that it fired, then cancels the task."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


async def run_with_loop_timer(
    clock: Clock | None, seconds: float, callback: Callback, context: ResilienceContext, state: Any
) -> Outcome[Any] | None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a timeout must run inside an asyncio task")
    cancelling = task.cancelling()
    expiry = _Expiry(task)
    handle = loop.call_at(loop.time() + seconds, expiry)
    try:
        outcome = await callback(context, state)
    except asyncio.CancelledError:
        if expiry.fired and task.uncancel() <= cancelling:
            return None  # only our timer asked for this cancellation: it is our expiry
        raise
    except BaseException:
        if expiry.fired:
            task.uncancel()
        raise
    finally:
        handle.cancel()
    if expiry.fired:
        # The callback swallowed our cancellation and finished anyway: keep its result, but
        # take our cancel request back so the task's count stays balanced.
        task.uncancel()
    return outcome
