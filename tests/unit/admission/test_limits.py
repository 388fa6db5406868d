"""Limit algorithms: the limit converges down when latency rises and back up when it falls,
stays within its bounds, and drops on timeouts; invalid options name their field."""

from __future__ import annotations

import pytest

from netra_resilience import InvalidOptionsError
from netra_resilience.admission import (
    AIMDLimit,
    Gradient2Limit,
    LimitAlgorithm,
    LimitEstimator,
    VegasLimit,
)

ALGORITHMS: list[LimitAlgorithm] = [
    Gradient2Limit(initial_limit=20, min_limit=2, max_limit=100),
    VegasLimit(initial_limit=20, min_limit=2, max_limit=100, probe_multiplier=1000),
    AIMDLimit(initial_limit=20, min_limit=2, max_limit=100, timeout=0.5),
]


def _feed(estimator: object, rtt: float, samples: int) -> float:
    return _trace(estimator, rtt, samples)[-1]


def _trace(estimator: object, rtt: float, samples: int) -> list[float]:
    limits = []
    for _ in range(samples):
        current = estimator.limit  # type: ignore[attr-defined]
        # The caller uses the whole limit: not app-limited, so the algorithm may move.
        limits.append(estimator.update(rtt, max(1, int(current)), False))  # type: ignore[attr-defined]
    return limits


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_limit_falls_when_latency_rises_and_recovers_when_it_falls(
    algorithm: LimitAlgorithm,
) -> None:
    estimator = algorithm.estimator(lambda: 0.5)
    healthy = _feed(estimator, 0.1, 300)
    assert healthy > 20  # grew while latency stayed at its floor
    # Gradient2 takes a lasting new latency as its new normal after a while (its long average
    # catches up): what matters is that it sheds while the latency is rising.
    overloaded = min(_trace(estimator, 1.0, 300))
    assert overloaded < healthy * 0.5
    assert overloaded >= algorithm.min_limit
    recovered = _feed(estimator, 0.1, 300)
    assert recovered > overloaded * 2
    assert recovered <= algorithm.max_limit


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_limit_stays_within_bounds(algorithm: LimitAlgorithm) -> None:
    estimator = algorithm.estimator(lambda: 0.5)
    assert _feed(estimator, 0.1, 2000) <= algorithm.max_limit
    assert _feed(estimator, 50.0, 2000) >= algorithm.min_limit


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_a_drop_lowers_the_limit(algorithm: LimitAlgorithm) -> None:
    estimator = algorithm.estimator(lambda: 0.5)
    _feed(estimator, 0.1, 50)
    before = estimator.limit
    for _ in range(5):
        estimator.update(0.1, int(estimator.limit), True)
    assert estimator.limit < before


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_an_app_limited_caller_does_not_grow_the_limit(algorithm: LimitAlgorithm) -> None:
    estimator = algorithm.estimator(lambda: 0.5)
    estimator.update(0.1, 1, False)  # no-load latency seen
    for _ in range(200):
        estimator.update(0.1, 1, False)  # one call in flight out of twenty
    assert estimator.limit == 20


def test_aimd_backs_off_multiplicatively_and_grows_by_one() -> None:
    estimator = AIMDLimit(initial_limit=20, timeout=1.0).estimator(lambda: 0.5)
    assert estimator.update(2.0, 20, False) == 18  # slower than the timeout: x0.9
    assert estimator.update(0.1, 18, False) == 19
    assert estimator.update(0.1, 2, False) == 19  # app-limited: unchanged


def test_vegas_reprobes_the_no_load_latency() -> None:
    # An upstream that got permanently slower: without probing, Vegas would read the new
    # latency as queueing forever and sit at its minimum.
    estimator = VegasLimit(initial_limit=10, probe_multiplier=2).estimator(lambda: 0.0)
    _feed(estimator, 0.1, 20)
    _feed(estimator, 1.0, 400)
    assert estimator.limit > 10


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: AIMDLimit(min_limit=0), "min_limit"),
        (lambda: AIMDLimit(min_limit=10, max_limit=5), "max_limit"),
        (lambda: AIMDLimit(initial_limit=500), "initial_limit"),
        (lambda: AIMDLimit(backoff_ratio=1.0), "backoff_ratio"),
        (lambda: AIMDLimit(timeout=0), "timeout"),
        (lambda: VegasLimit(smoothing=0), "smoothing"),
        (lambda: VegasLimit(probe_multiplier=0), "probe_multiplier"),
        (lambda: VegasLimit(slow_start=1), "slow_start"),  # type: ignore[arg-type]
        (lambda: Gradient2Limit(tolerance=0.5), "tolerance"),
        (lambda: Gradient2Limit(queue_size=-1), "queue_size"),
        (lambda: Gradient2Limit(long_window=0), "long_window"),
    ],
)
def test_invalid_options_name_the_field(factory: object, field: str) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        factory()  # type: ignore[operator]
    assert info.value.field == field


def _searching(estimator: LimitEstimator) -> bool:
    return estimator.slow_start


def test_vegas_slow_start_doubles_until_a_queue_shows_then_drains_to_the_target() -> None:
    estimator = VegasLimit(initial_limit=20, max_limit=500).estimator(lambda: 0.5)
    assert estimator.slow_start
    assert estimator.update(0.1, 20, False) == 40  # the first sample: no queue by definition
    assert estimator.update(0.1, 40, False) == 80
    # At 80 the latency shows 40 queued (80 x (1 - 0.1 / 0.2)): slow start ends and the limit
    # drops to the no-queue estimate plus 6·log10 (80 - 40 + 6), not by log10 alone.
    assert estimator.update(0.2, 80, False) == 46
    assert not _searching(estimator)
    assert estimator.update(0.1, 46, False) == 52  # then the additive rule: + 6·log10


def test_vegas_without_slow_start_grows_additively() -> None:
    estimator = VegasLimit(initial_limit=20, slow_start=False).estimator(lambda: 0.5)
    estimator.update(0.1, 20, False)  # the no-load latency, no change
    assert estimator.update(0.1, 20, False) == 26


def test_vegas_slow_start_ends_on_a_drop() -> None:
    estimator = VegasLimit(initial_limit=20).estimator(lambda: 0.5)
    estimator.update(0.1, 20, False)
    assert estimator.update(0.1, 40, True) == 39
    assert not _searching(estimator)
