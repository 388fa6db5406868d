"""Shared fixtures: the fake clock and a recording telemetry listener."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netra_resilience.testing import FakeClock, RecordingListener


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture(autouse=True)
def _sse_exit_event_per_loop() -> Iterator[None]:
    """sse-starlette < 3 (our floor is 2.2.1) keeps one process-wide exit event, bound to the
    first event loop that waits on it; each test has its own loop, so each starts with none."""
    try:
        from sse_starlette.sse import AppStatus
    except ImportError:  # the extra is not installed (the adapters' leg)
        yield
        return
    global_event = hasattr(AppStatus, "should_exit_event")  # sse-starlette 3 has no such global
    if global_event:
        setattr(AppStatus, "should_exit_event", None)  # noqa: B010 (absent from 3's types)
    yield
    if global_event:
        setattr(AppStatus, "should_exit_event", None)  # noqa: B010
