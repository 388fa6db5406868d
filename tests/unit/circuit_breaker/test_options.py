"""Options are validated at construction and name the offending field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.testing import FakeClock


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_ratio", 0),
        ("failure_ratio", 1.5),
        ("failure_ratio", -0.1),
        ("failure_ratio", float("nan")),
        ("minimum_throughput", 1),
        ("minimum_throughput", 2.5),
        ("sampling_duration", 0.1),
        ("sampling_duration", -1),
        ("sampling_duration", float("inf")),
        ("window", "sliding"),
        ("window_size", 1),
        ("slow_call_duration", -1),
        ("slow_call_duration", 0),
        ("slow_call_ratio", 0),
        ("slow_call_ratio", 2),
        ("break_duration", 0),
        ("break_duration", -1),
        ("break_duration", timedelta(seconds=-3)),
        ("break_duration", float("inf")),  # would never half-open again
        ("max_break_duration", 5),  # shorter than break_duration (15)
        ("permitted_calls_in_half_open", 0),
        ("half_open_max_wait", -1),
        ("should_handle", 3),
        ("break_duration_generator", 5),
        ("retry_after", "header"),
        ("on_opened", "not callable"),
        ("on_closed", 1),
        ("on_half_opened", 1),
        ("control", object()),
        ("state_provider", object()),
        ("store", object()),
    ],
)
def test_invalid_option_names_its_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        CircuitBreakerOptions(**{field: value})
    assert info.value.field == field
    assert f"CircuitBreakerOptions.{field}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_defaults() -> None:
    options = CircuitBreakerOptions()
    assert options.failure_ratio == 0.5
    assert options.minimum_throughput == 10
    assert options.sampling_duration == 30.0
    assert options.break_duration == 15.0
    assert options.permitted_calls_in_half_open == 1
    assert options.window == "time"
    policy = options.policy()
    assert policy.half_open_max_wait == 15.0  # defaults to the break duration
    assert policy.effective_minimum_throughput == 10


def test_durations_accept_timedelta_and_store_seconds() -> None:
    options = CircuitBreakerOptions(
        sampling_duration=timedelta(minutes=1),
        break_duration=timedelta(seconds=30),
        slow_call_duration=timedelta(milliseconds=500),
        half_open_max_wait=timedelta(seconds=45),
    )
    assert options.sampling_duration == 60.0
    assert options.break_duration == 30.0
    assert options.slow_call_duration == 0.5
    assert options.half_open_max_wait == 45.0


def test_count_window_policy_caps_minimum_throughput() -> None:
    policy = CircuitBreakerOptions(window="count", window_size=5, minimum_throughput=20).policy()
    assert policy.effective_minimum_throughput == 5


def test_options_are_frozen_and_keyword_only() -> None:
    options = CircuitBreakerOptions()
    with pytest.raises(AttributeError):
        options.failure_ratio = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError):
        CircuitBreakerOptions(0.5)  # type: ignore[call-arg]


async def test_should_handle_takes_exception_classes(clock: FakeClock) -> None:
    options = CircuitBreakerOptions(should_handle=(TimeoutError, ConnectionError))
    pipeline = PipelineBuilder("x", clock=clock).add_circuit_breaker(options).build()

    async def refused() -> None:
        raise ConnectionRefusedError()

    async def bug() -> None:
        raise KeyError("not a failure of the dependency")

    for _ in range(12):  # not handled: counted as successes, never a trip
        await pipeline.execute_outcome(bug)
    assert pipeline.strategies[0].closed  # type: ignore[attr-defined]
    for _ in range(12):
        await pipeline.execute_outcome(refused)
    assert not pipeline.strategies[0].closed  # type: ignore[attr-defined]
    with pytest.raises(InvalidOptionsError, match=r"CircuitBreakerOptions\.should_handle"):
        CircuitBreakerOptions(should_handle=(ValueError, 3))  # type: ignore[arg-type]
