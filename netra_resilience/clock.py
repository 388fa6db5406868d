"""The one source of time: ``Clock``. Strategies never import ``time`` or call asyncio.sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Monotonic time, wall time, sleeping and timeouts.

    ``timeout(seconds)`` returns an async context manager that raises :class:`TimeoutError`
    when *its own* deadline passes (``None`` = no deadline); a caller's cancel stays
    ``CancelledError``.
    """

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[Any]: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class TimerClock(Clock, Protocol):
    """A clock that can also run a callback later (``call_later``, as asyncio's loop does).

    Optional: a watchdog kept for a whole stream needs it (one timer re-armed lazily instead
    of a timeout per chunk); with a clock without it, callers fall back to ``timeout``.
    """

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Cancellable: ...


def call_later_of(clock: Clock) -> Callable[[float, Callable[[], object]], Cancellable] | None:
    """``clock.call_later`` when the clock has it, else ``None``."""
    method = getattr(clock, "call_later", None)
    return method if callable(method) else None


class SystemClock:
    """The real clock: ``time.monotonic``, UTC wall time, ``asyncio.sleep``/``asyncio.timeout``."""

    __slots__ = ()

    # The C function itself, not a wrapper: saves a Python frame on every hot-path read.
    monotonic = staticmethod(time.monotonic)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[Any]:
        if seconds is None:
            return asyncio.timeout(None)
        # asyncio.timeout takes a loop-time deadline; loop.time() is time.monotonic() by default.
        return asyncio.timeout_at(asyncio.get_running_loop().time() + max(seconds, 0.0))

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Cancellable:
        return asyncio.get_running_loop().call_later(max(seconds, 0.0), callback)


SYSTEM_CLOCK = SystemClock()
"""A stateless default instance (safe to share: it holds nothing)."""
