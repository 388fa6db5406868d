"""``BackendGate``: a small circuit breaker in front of one infrastructure backend.

Redis and the session database are dependencies too. A call into them must never hang the
request that made it: every call is bounded by ``timeout``, and after ``failure_threshold``
consecutive failures the gate opens, so callers skip the backend at once and use their
fallback. While open, one *background* probe per ``retry_interval`` checks whether the backend
is back; no user call pays for the probe. When a probe succeeds the gate closes and
``on_recovered`` runs (the session store starts write-back from there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.validation import Seconds, duration, integer

T = TypeVar("T")

__all__ = ["BackendGate"]


class BackendGate:
    """Closed: calls pass, each bounded by ``timeout``. Open: :meth:`allows` is false.

    ``probe`` is an ``async () -> None`` that raises while the backend is unavailable.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_on_recovered",
        "_open",
        "_probe",
        "_probe_task",
        "_retry_at",
        "failure_threshold",
        "name",
        "retry_interval",
        "timeout",
    )

    def __init__(
        self,
        probe: Callable[[], Awaitable[None]],
        *,
        name: str = "backend",
        clock: Clock | None = None,
        timeout: Seconds = 0.25,
        failure_threshold: int = 1,
        retry_interval: Seconds = 1.0,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        owner = type(self).__name__
        self.name = name
        self.timeout = duration(owner, "timeout", timeout)
        self.failure_threshold = integer(owner, "failure_threshold", failure_threshold)
        self.retry_interval = duration(owner, "retry_interval", retry_interval)
        self._probe = probe
        self._clock = clock or SYSTEM_CLOCK
        self._on_recovered = on_recovered
        self._failures = 0
        self._open = False
        self._retry_at = 0.0
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """Whether calls currently go to the backend."""
        return not self._open

    @property
    def probing(self) -> bool:
        """Whether a background probe is in flight right now."""
        return self._probe_task is not None

    def allows(self) -> bool:
        """True when closed. When open, starts a background probe if one is due; False."""
        if not self._open:
            return True
        if self._probe_task is None and self._clock.monotonic() >= self._retry_at:
            self._probe_task = asyncio.get_running_loop().create_task(self._run_probe())
        return False

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` within ``timeout``, recording success or failure.

        A caller's cancellation propagates and counts as neither.
        """
        try:
            async with self._clock.timeout(self.timeout):
                result = await fn()
        except Exception:
            self.record_failure()
            raise
        self._failures = 0
        return result

    def record_failure(self) -> None:
        self._failures += 1
        if not self._open and self._failures >= self.failure_threshold:
            self._open = True
            self._retry_at = self._clock.monotonic() + self.retry_interval

    def trip(self) -> None:
        """Open now (e.g. a failure seen outside :meth:`call`)."""
        self._failures = self.failure_threshold
        if not self._open:
            self._open = True
            self._retry_at = self._clock.monotonic() + self.retry_interval

    async def _run_probe(self) -> None:
        try:
            async with self._clock.timeout(self.timeout):
                await self._probe()
        except Exception:
            self._retry_at = self._clock.monotonic() + self.retry_interval
        else:
            self._open = False
            self._failures = 0
            if self._on_recovered is not None:
                self._on_recovered()
        finally:
            self._probe_task = None

    async def probe_now(self) -> bool:
        """Probe immediately (awaited); returns whether the backend is available afterwards."""
        if self._open:
            if self._probe_task is None:
                self._probe_task = asyncio.get_running_loop().create_task(self._run_probe())
            await asyncio.shield(self._probe_task)
        return not self._open

    async def aclose(self) -> None:
        task = self._probe_task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"BackendGate({self.name!r}, {state})"
