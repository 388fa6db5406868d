"""Health windows on the fake clock alone (Polly's RollingHealthMetricsTests, r4j ring)."""

from __future__ import annotations

from netra_resilience.circuit_breaker import CountWindow, HealthInfo, RollingTimeWindow, time_window
from netra_resilience.testing import FakeClock


def test_health_info_ratios() -> None:
    assert HealthInfo.of(0, 0) == HealthInfo(0, 0, 0.0, 0, 0.0)
    assert HealthInfo.of(4, 1, 2) == HealthInfo(4, 1, 0.25, 2, 0.5)


async def test_rolling_window_counts_within_sampling_duration(clock: FakeClock) -> None:
    window = RollingTimeWindow(10.0, monotonic=clock.monotonic)
    window.add(clock.monotonic(), True, False)
    await clock.advance(5)
    window.add_success()
    window.add(clock.monotonic(), False, True)
    assert window.health(clock.monotonic()) == HealthInfo.of(3, 1, 1)


async def test_rolling_window_buckets_expire_one_by_one(clock: FakeClock) -> None:
    window = RollingTimeWindow(10.0, monotonic=clock.monotonic)  # 10 buckets of 1 s
    window.add(clock.monotonic(), True, False)  # bucket started at t0
    await clock.advance(0.5)
    window.add(clock.monotonic(), True, False)  # same bucket (less than 1 s later)
    await clock.advance(4.5)
    window.add_success()  # new bucket at t0 + 5
    await clock.advance(4.99)
    assert window.health(clock.monotonic()).throughput == 3
    await clock.advance(0.01)  # t0 + 10: the first bucket (both failures) leaves
    assert window.health(clock.monotonic()) == HealthInfo.of(1, 0)
    await clock.advance(5)  # t0 + 15: the success's bucket leaves too
    assert window.health(clock.monotonic()).throughput == 0


async def test_rolling_window_after_long_idle_starts_fresh(clock: FakeClock) -> None:
    window = RollingTimeWindow(30.0, monotonic=clock.monotonic)
    for _ in range(50):
        window.add(clock.monotonic(), True, False)
    await clock.advance(3600)
    window.add_success()
    assert window.health(clock.monotonic()) == HealthInfo.of(1, 0)


async def test_rolling_window_reset(clock: FakeClock) -> None:
    window = RollingTimeWindow(30.0, monotonic=clock.monotonic)
    window.add(clock.monotonic(), True, True)
    window.reset(clock.monotonic())
    assert window.health(clock.monotonic()).throughput == 0
    window.add_success()
    assert window.health(clock.monotonic()) == HealthInfo.of(1, 0)


async def test_tiny_sampling_duration_uses_one_tumbling_window(clock: FakeClock) -> None:
    window = time_window(0.1, clock.monotonic)  # buckets would be 10 ms: Polly goes single
    window.add(clock.monotonic(), True, False)
    await clock.advance(0.05)
    window.add_success()
    assert window.health(clock.monotonic()).throughput == 2
    await clock.advance(0.06)  # 0.1 s after the window started: everything goes at once
    assert window.health(clock.monotonic()).throughput == 0
    assert isinstance(time_window(30.0, clock.monotonic), RollingTimeWindow)


def test_count_window_evicts_oldest_call() -> None:
    window = CountWindow(3)
    window.add(0.0, True, True)
    window.add_success()
    window.add(0.0, False, True)
    assert window.health(0.0) == HealthInfo.of(3, 1, 2)
    window.add_success()  # evicts the slow failure
    assert window.health(0.0) == HealthInfo.of(3, 0, 1)
    window.add_success()
    window.add_success()
    assert window.health(0.0) == HealthInfo.of(3, 0, 0)
    window.add(0.0, True, False)
    assert window.health(0.0) == HealthInfo.of(3, 1, 0)


def test_count_window_ignores_time_and_resets() -> None:
    window = CountWindow(5)
    window.add(0.0, True, False)
    window.add(1e9, True, False)  # no time expiry in a count window
    assert window.health(2e9) == HealthInfo.of(2, 2)
    window.reset(0.0)
    assert window.health(0.0).throughput == 0


async def test_rolling_window_after_a_whole_idle_window_counts_only_what_follows(
    clock: FakeClock,
) -> None:
    window = RollingTimeWindow(10.0, monotonic=clock.monotonic)
    for _ in range(3):
        window.add(clock.monotonic(), True, True)
        await clock.advance(2)
    await clock.advance(10)  # the last bucket started 12 s ago: nothing is left
    window.add_success()
    assert window.health(clock.monotonic()) == HealthInfo.of(1, 0, 0)
    await clock.advance(0.5)  # still the same new bucket, which leaves 10 s after it started
    window.add(clock.monotonic(), True, False)
    assert window.health(clock.monotonic()) == HealthInfo.of(2, 1, 0)
    await clock.advance(9.5)
    assert window.health(clock.monotonic()) == HealthInfo.of(0, 0, 0)
