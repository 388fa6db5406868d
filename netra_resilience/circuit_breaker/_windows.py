"""Health windows: failure and slow-call ratios over time buckets or the last N calls, or the
current run of consecutive failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthInfo:
    """Counts in the current window. Ratios are 0.0 when the window is empty."""

    throughput: int
    failures: int
    failure_ratio: float
    slow_calls: int = 0
    slow_call_ratio: float = 0.0

    @classmethod
    def of(cls, throughput: int, failures: int, slow_calls: int = 0) -> HealthInfo:
        if throughput <= 0:
            return cls(0, 0, 0.0, 0, 0.0)
        return cls(throughput, failures, failures / throughput, slow_calls, slow_calls / throughput)


EMPTY_HEALTH = HealthInfo(0, 0, 0.0, 0, 0.0)

# Polly uses one tumbling window when a rolling bucket would be shorter than 20 ms.
_MIN_BUCKET = 0.02
_BUCKETS = 10


class RollingTimeWindow:
    """Counts over the last ``sampling_duration`` seconds, in ``buckets`` steps (Polly).

    A new bucket starts at the first record at least ``sampling_duration / buckets`` after the
    current one started; a bucket leaves the window once ``now - start >= sampling_duration``.
    With ``buckets=1`` this is Polly's single tumbling window.

    Counters are cumulative and each bucket remembers the counters at its start, so a record
    is one comparison and one increment; the window's counts are differences.
    """

    __slots__ = (
        "_base",
        "_bucket",
        "_buckets",
        "_failures",
        "_monotonic",
        "_next_roll",
        "_sampling",
        "_slow",
        "_start",
        "_total",
    )

    def __init__(
        self,
        sampling_duration: float,
        *,
        monotonic: Callable[[], float],
        buckets: int = _BUCKETS,
    ) -> None:
        self._monotonic = monotonic
        self._sampling = sampling_duration
        self._bucket = sampling_duration / buckets
        self._total = 0
        self._failures = 0
        self._slow = 0
        # (bucket start, total, failures, slow at that start); the last one is current. A
        # list, not a deque: at most ``buckets`` + 1 entries, and a deque's first block alone
        # is ~0.7 KB, kept by every breaker (per-key pipelines have thousands).
        self._buckets: list[tuple[float, int, int, int]] = []
        self.reset(monotonic())

    def add_success(self) -> None:
        now = self._monotonic()
        if now >= self._next_roll:
            self._roll(now)
        self._total += 1

    def add(self, now: float, failed: bool, slow: bool) -> None:
        if now >= self._next_roll:
            self._roll(now)
        self._total += 1
        if failed:
            self._failures += 1
        if slow:
            self._slow += 1

    def health(self, now: float) -> HealthInfo:
        if now >= self._next_roll:
            self._roll(now)
        _, total, failures, slow = self._buckets[0]
        return HealthInfo.of(self._total - total, self._failures - failures, self._slow - slow)

    def reset(self, now: float) -> None:
        self._buckets.clear()
        self._start = now
        self._buckets.append((now, self._total, self._failures, self._slow))
        self._next_roll = now + self._bucket

    def _roll(self, now: float) -> None:
        if now - self._start >= self._sampling:
            # Idle for a whole window (a per-key breaker's usual case): every bucket has
            # left it and only a new one remains, what the steps below would leave.
            self.reset(now)
            return
        buckets = self._buckets
        if now - self._start >= self._bucket:
            self._start = now
            buckets.append((now, self._total, self._failures, self._slow))
        while now - buckets[0][0] >= self._sampling:
            del buckets[0]  # never empties: the current bucket started less than a bucket ago
        self._next_roll = min(self._start + self._bucket, buckets[0][0] + self._sampling)


class CountWindow:
    """Counts over the last ``size`` calls: a ring of outcome codes (resilience4j COUNT_BASED)."""

    __slots__ = ("_failures", "_index", "_ring", "_size", "_slow", "_total")

    # Codes: 0 empty slot, bit 1 a call, bit 2 failed, bit 4 slow.
    def __init__(self, size: int) -> None:
        self._size = size
        self._ring = bytearray(size)
        self._index = 0
        self._total = 0
        self._failures = 0
        self._slow = 0

    def add_success(self) -> None:
        ring = self._ring
        index = self._index
        if ring[index] != 1:  # replacing a plain success with one changes no count
            self._put_at(index, 1)
        index += 1
        self._index = 0 if index == self._size else index

    def add(self, now: float, failed: bool, slow: bool) -> None:
        self._put(1 | (2 if failed else 0) | (4 if slow else 0))

    def _put(self, code: int) -> None:
        index = self._index
        self._put_at(index, code)
        index += 1
        self._index = 0 if index == self._size else index

    def _put_at(self, index: int, code: int) -> None:
        old = self._ring[index]
        if old:
            self._total -= 1
            if old & 2:
                self._failures -= 1
            if old & 4:
                self._slow -= 1
        self._ring[index] = code
        self._total += 1
        if code & 2:
            self._failures += 1
        if code & 4:
            self._slow += 1

    def health(self, now: float) -> HealthInfo:
        return HealthInfo.of(self._total, self._failures, self._slow)

    def reset(self, now: float) -> None:
        self._ring = bytearray(self._size)
        self._index = self._total = self._failures = self._slow = 0


class ConsecutiveWindow:
    """The current run of failures in a row; any success ends it (a backend breaker's window).

    Its ``health`` reports the run as both throughput and failures, so the controller's usual
    rule (``throughput >= minimum_throughput`` and ``failure_ratio >= failure_ratio``) trips
    at ``minimum_throughput`` consecutive failures. Slow calls are not tracked.
    """

    __slots__ = ("_run",)

    def __init__(self) -> None:
        self._run = 0

    def add_success(self) -> None:
        self._run = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:
        self._run = self._run + 1 if failed else 0

    def health(self, now: float) -> HealthInfo:
        return HealthInfo.of(self._run, self._run)

    def reset(self, now: float) -> None:
        self._run = 0


HealthWindow = RollingTimeWindow | CountWindow | ConsecutiveWindow


def time_window(sampling_duration: float, monotonic: Callable[[], float]) -> RollingTimeWindow:
    """Polly's choice: 10 rolling buckets, or one tumbling window if buckets would be tiny."""
    buckets = _BUCKETS if sampling_duration / _BUCKETS >= _MIN_BUCKET else 1
    return RollingTimeWindow(sampling_duration, monotonic=monotonic, buckets=buckets)
