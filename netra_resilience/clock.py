"""The one source of time: ``Clock``. Strategies never import ``time`` or call asyncio.sleep."""

from __future__ import annotations

import asyncio
import time
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


SYSTEM_CLOCK = SystemClock()
"""A stateless default instance (safe to share: it holds nothing)."""
