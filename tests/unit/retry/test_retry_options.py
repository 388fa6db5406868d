"""RetryOptions validation: a bad value fails at construction, naming the field."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
import tenacity

from netra_resilience import InvalidOptionsError
from netra_resilience.retry import Backoff, RetryOptions


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"delay": -1.0}, "delay"),
        ({"delay": math.nan}, "delay"),
        ({"delay": math.inf}, "delay"),
        ({"delay": "1s"}, "delay"),
        ({"max_delay": 0}, "max_delay"),
        ({"max_delay": -3}, "max_delay"),
        ({"max_server_delay": 0}, "max_server_delay"),
        ({"max_server_delay": -1}, "max_server_delay"),
        ({"max_server_delay": math.nan}, "max_server_delay"),
        ({"backoff": "fibonacci"}, "backoff"),
        ({"use_jitter": 1}, "use_jitter"),
        ({"should_handle": None}, "should_handle"),
        ({"delay_generator": 3}, "delay_generator"),
        ({"retry_after": "header"}, "retry_after"),
        ({"on_retry": object()}, "on_retry"),
        ({"stop": 5}, "stop"),
        ({"wait": 1.0}, "wait"),
        ({"stop": tenacity.stop_after_attempt(5), "max_attempts": 5}, "stop"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError) as info:
        RetryOptions(**kwargs)
    assert info.value.field == field
    assert f"RetryOptions.{field}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_defaults_and_normalisation() -> None:
    options = RetryOptions(backoff="linear", delay=timedelta(milliseconds=500), max_delay=4)  # type: ignore[arg-type]
    assert options.backoff is Backoff.LINEAR
    assert options.delay == 0.5
    assert options.max_delay == 4.0
    assert isinstance(options.max_delay, float)
    defaults = RetryOptions()
    assert (defaults.max_attempts, defaults.backoff, defaults.delay) == (3, "exponential", 1.0)
    assert (defaults.max_delay, defaults.max_server_delay, defaults.use_jitter) == (30, 120, True)
    assert RetryOptions(delay=0).delay == 0.0


def test_options_are_frozen() -> None:
    options = RetryOptions()
    with pytest.raises(AttributeError):
        options.max_attempts = 5  # type: ignore[misc]
