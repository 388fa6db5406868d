"""Shared fixtures: the fake clock and a recording telemetry listener."""

from __future__ import annotations

import pytest

from netra_resilience.testing import FakeClock, RecordingListener


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()
