"""``HookQueue``: the bounded background lane for fire-and-forget hooks.

Analytics and monitoring calls are queued here instead of being awaited by the run. The
queue is bounded: when full it drops the *oldest* job (stale analytics matter least) and
counts it, so a dead hook can cost memory and worker time but never the user's run.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.validation import integer

HookJob = tuple[Callable[..., Awaitable[object]], tuple[Any, ...]]


class HookQueue:
    """Bounded FIFO served by ``workers`` tasks; ``aclose()`` drains it on shutdown."""

    __slots__ = (
        "_clock",
        "_closing",
        "_jobs",
        "_max",
        "_ready",
        "_worker_count",
        "_workers",
        "abandoned",
        "dropped",
        "processed",
    )

    def __init__(self, *, max_size: int = 1000, workers: int = 2, clock: Clock | None = None):
        self._max = integer("HookQueue", "max_size", max_size, minimum=1)
        self._worker_count = integer("HookQueue", "workers", workers, minimum=1, maximum=64)
        self._clock = clock or SYSTEM_CLOCK
        self._jobs: deque[HookJob] = deque()
        self._ready: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._closing = False
        self.dropped = 0
        """Jobs dropped because the queue was full (or already shut down)."""
        self.processed = 0
        self.abandoned = 0
        """Jobs still queued when the drain deadline passed."""

    def __len__(self) -> int:
        return len(self._jobs)

    def offer(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Queue ``fn(*args)``; never waits. Drops the oldest job when full."""
        if self._closing:
            self.dropped += 1
            return
        jobs = self._jobs
        if len(jobs) >= self._max:
            jobs.popleft()
            self.dropped += 1
        jobs.append((fn, args))
        if self._ready is None:
            self._start()
        assert self._ready is not None
        self._ready.set()

    def _start(self) -> None:
        self._ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        for _ in range(self._worker_count):
            # An empty contextvars.Context: a worker must not inherit the ResilienceContext of
            # whichever run happened to start it (each job carries its own run's context).
            task = loop.create_task(self._work(), context=contextvars.Context())
            self._workers.append(task)

    async def _work(self) -> None:
        jobs = self._jobs
        ready = self._ready
        assert ready is not None
        while True:
            if not jobs:
                if self._closing:
                    return
                ready.clear()
                await ready.wait()
                continue
            fn, args = jobs.popleft()
            try:
                await fn(*args)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the worker itself is being stopped (drain deadline)
                # else the job raised it by itself (a closing socket): keep serving
            except Exception:  # jobs handle their own failures
                pass
            self.processed += 1

    async def aclose(self, within: float | None = 5.0) -> None:
        """Stop accepting jobs, run what is queued (at most ``within`` s on the clock), stop."""
        self._closing = True
        if self._ready is not None:
            self._ready.set()
        workers = [task for task in self._workers if not task.done()]
        if not workers:
            return
        try:
            async with self._clock.timeout(within):
                await asyncio.gather(*(asyncio.shield(task) for task in workers))
        except TimeoutError:
            self.abandoned += len(self._jobs)
            self._jobs.clear()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
