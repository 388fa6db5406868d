"""Scripted callables for retry tests.

A step is a result, an exception class, a factory (of an exception to raise or of a result),
or ``HANG``.
"""

from __future__ import annotations

import asyncio
from typing import Any

HANG = object()


class Upstream(Exception):
    """A transient upstream failure, optionally carrying a server hint (seconds)."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("upstream failed")
        self.retry_after = retry_after


class Script:
    """Plays ``steps`` in order (the last one repeats) and counts calls."""

    def __init__(self, *steps: Any) -> None:
        self.steps = steps
        self.calls = 0

    async def __call__(self) -> Any:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if step is HANG:
            await asyncio.Event().wait()
        if isinstance(step, type) and issubclass(step, BaseException):
            raise step()
        if callable(step):  # a factory: of an exception to raise, or of a result
            step = step()
            if isinstance(step, BaseException):
                raise step
        return step


class Response:
    """A result that must be closed when discarded (sync ``close``)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.closed = False

    def close(self) -> None:
        self.closed = True


class AsyncResponse(Response):
    """A result with ``aclose`` (which wins over ``close``)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.aclosed = False

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.aclosed = True


class BrokenClose(Response):
    def close(self) -> None:
        raise RuntimeError("close failed")
