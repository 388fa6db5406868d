"""Backoff math, checked against Polly v8's RetryHelper formulas."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from netra_resilience.retry import Backoff, compute_delay
from netra_resilience.testing import constant_random


def delays(
    backoff: Backoff,
    count: int,
    base: float = 1.0,
    *,
    jitter: bool = False,
    rand: float = 0.5,
    max_delay: float | None = None,
) -> list[float]:
    out, state = [], 0.0
    for attempt in range(count):
        delay, state = compute_delay(
            backoff,
            attempt,
            base,
            use_jitter=jitter,
            random=constant_random(rand),
            previous_state=state,
            max_delay=max_delay,
        )
        out.append(delay)
    return out


def test_formulas_without_jitter() -> None:
    assert delays(Backoff.CONSTANT, 4, 2.0) == [2.0, 2.0, 2.0, 2.0]
    assert delays(Backoff.LINEAR, 4, 2.0) == [2.0, 4.0, 6.0, 8.0]
    assert delays(Backoff.EXPONENTIAL, 5, 0.5) == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_jitter_is_plus_minus_25_percent_for_constant_and_linear() -> None:
    assert delays(Backoff.CONSTANT, 2, 2.0, jitter=True, rand=0.0) == [1.5, 1.5]
    assert delays(Backoff.CONSTANT, 1, 2.0, jitter=True, rand=0.5) == [2.0]
    assert delays(Backoff.CONSTANT, 1, 2.0, jitter=True, rand=0.9) == [pytest.approx(2.4)]
    assert delays(Backoff.LINEAR, 3, 1.0, jitter=True, rand=0.0) == [0.75, 1.5, 2.25]


def test_exponential_jitter_is_decorrelated_jitter_v2() -> None:
    expected, previous = [], 0.0
    for attempt in range(4):  # Polly: t = attempt + r; next = 2^t * tanh(sqrt(4t))
        t = attempt + 0.5
        following = 2**t * math.tanh(math.sqrt(4 * t))
        expected.append((following - previous) / 1.4)
        previous = following
    got = delays(Backoff.EXPONENTIAL, 4, jitter=True, rand=0.5)
    assert got == pytest.approx(expected)
    assert got == pytest.approx([0.8974, 1.0930, 2.0357, 4.0460], abs=1e-4)


def test_decorrelated_jitter_medians_track_the_exponential_curve() -> None:
    rng = random.Random(7)
    samples: list[list[float]] = [[] for _ in range(6)]
    for _ in range(2000):
        state = 0.0
        for attempt in range(6):
            delay, state = compute_delay(
                Backoff.EXPONENTIAL,
                attempt,
                1.0,
                use_jitter=True,
                random=rng.random,
                previous_state=state,
            )
            assert delay >= 0
            samples[attempt].append(delay)
    medians = [statistics.median(s) for s in samples]
    # Polly's documented medians for d = 1 s: about 0.9, 1.1, 2, 4, 8, 16.
    for median, target in zip(medians, [0.9, 1.1, 2.0, 4.0, 8.0, 16.0], strict=True):
        assert median == pytest.approx(target, rel=0.15)


def test_max_delay_clamps_and_zero_base_means_no_delay() -> None:
    assert delays(Backoff.EXPONENTIAL, 6, 1.0, max_delay=5.0) == [1, 2, 4, 5, 5, 5]
    assert delays(Backoff.LINEAR, 3, 0.0, jitter=True) == [0.0, 0.0, 0.0]


def test_overflow_saturates_at_max_delay() -> None:
    delay, _ = compute_delay(
        Backoff.EXPONENTIAL, 5000, 1.0, use_jitter=False, random=constant_random(), max_delay=9.0
    )
    assert delay == 9.0
    delay, state = compute_delay(
        Backoff.EXPONENTIAL, 2000, 1.0, use_jitter=True, random=constant_random(), max_delay=9.0
    )
    assert delay == 9.0
    assert math.isinf(state)


def test_accepts_the_string_value_and_rejects_unknown_names() -> None:
    assert compute_delay("linear", 1, 1.0, use_jitter=False, random=constant_random()) == (2.0, 0.0)
    with pytest.raises(ValueError):
        compute_delay("fibonacci", 0, 1.0, use_jitter=False, random=constant_random())
