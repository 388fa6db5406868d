"""Running one health check: its verdict, bounded by the check timeout, errors classified."""

from __future__ import annotations

import asyncio
from typing import Any

from netra_resilience.clock import Clock
from netra_resilience.health._dependency import HealthCheck
from netra_resilience.health._status import HealthStatus


def _status_of(value: object) -> HealthStatus:
    if value is False:
        return HealthStatus.FAIL
    if isinstance(value, HealthStatus):
        return value
    return HealthStatus.PASS


def _timed_out(deadline: Any) -> bool:
    """Did the clock's own deadline fire (``asyncio.Timeout.expired()``)?"""
    expired = getattr(deadline, "expired", None)
    return bool(expired()) if callable(expired) else False


async def run_check(
    check: HealthCheck, clock: Clock, check_timeout: float
) -> tuple[HealthStatus, str | None]:
    """The check's raw status and, when it failed by raising, the error type."""
    error_type: str | None = None
    deadline: Any = None
    try:
        async with clock.timeout(check_timeout) as deadline:
            raw = _status_of(await check())
    except TimeoutError as exc:
        raw = HealthStatus.FAIL
        error_type = "timeout" if _timed_out(deadline) else type(exc).__name__
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # we are being stopped
        raw, error_type = HealthStatus.FAIL, "CancelledError"  # the check cancelled itself
    except Exception as exc:
        raw, error_type = HealthStatus.FAIL, type(exc).__name__
    return raw, error_type
