"""``add_x`` sugar: shorthand values, keyword fields, and misuse rejected by name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import (
    FallbackOptions,
    InvalidOptionsError,
    PipelineBuilder,
    RateLimiterOptions,
    RateLimitRejectedError,
    RetryOptions,
    TimeoutOptions,
    TimeoutRejectedError,
)
from netra_resilience.circuit_breaker import CircuitBreakerStrategy
from netra_resilience.retry import RetryStrategy
from netra_resilience.testing import FakeClock, advance_until_done
from netra_resilience.timeout import TimeoutStrategy


@pytest.mark.parametrize("value", [5, 5.0, timedelta(seconds=5), TimeoutOptions(timeout=5)])
async def test_add_timeout_takes_seconds_or_its_options(value: Any) -> None:
    clock = FakeClock()
    pipeline = PipelineBuilder("dep", clock=clock).add_timeout(value).build()
    assert isinstance(pipeline.strategies[0], TimeoutStrategy)

    async def hang() -> None:
        await clock.sleep(60)

    start = clock.monotonic()
    with pytest.raises(TimeoutRejectedError):
        await advance_until_done(clock, pipeline.execute(hang))
    assert clock.monotonic() - start == pytest.approx(5.0)


async def test_add_retry_takes_keyword_fields() -> None:
    clock = FakeClock()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        return "ok"

    pipeline = (
        PipelineBuilder("dep", clock=clock)
        .add_retry(max_attempts=3, delay=0.5, use_jitter=False)
        .build()
    )
    assert isinstance(pipeline.strategies[0], RetryStrategy)
    assert await advance_until_done(clock, pipeline.execute(flaky)) == "ok"
    assert calls == 3


def test_add_circuit_breaker_with_no_arguments_uses_the_defaults() -> None:
    pipeline = PipelineBuilder("dep").add_circuit_breaker().build()
    assert isinstance(pipeline.strategies[0], CircuitBreakerStrategy)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.add_timeout(RetryOptions()), r"add_timeout expects TimeoutOptions, got Retry"),
        (lambda b: b.add_retry(TimeoutOptions()), r"add_retry expects RetryOptions, got Timeout"),
        (lambda b: b.add_timeout("5"), r"add_timeout expects TimeoutOptions, got str"),
        (lambda b: b.add_retry(RetryOptions(), delay=1), r"add_retry takes an options object or"),
        (lambda b: b.add(5), r"PipelineBuilder\.add int does not implement create_strategy"),
    ],
)
def test_misuse_names_the_method(call: Any, message: str) -> None:
    with pytest.raises(InvalidOptionsError, match=message):
        call(PipelineBuilder("dep"))


def test_an_unknown_keyword_fails_like_the_options_constructor() -> None:
    with pytest.raises(TypeError, match="max_tries"):
        PipelineBuilder("dep").add_retry(max_tries=3)


async def test_should_handle_takes_exception_classes_and_tuples() -> None:
    clock = FakeClock()
    attempts: list[str] = []

    async def fail(kind: type[Exception]) -> None:
        attempts.append(kind.__name__)
        raise kind("x")

    pipeline = (
        PipelineBuilder("dep", clock=clock)
        .add_retry(max_attempts=2, delay=0, should_handle=(ConnectionError, TimeoutError))
        .build()
    )
    with pytest.raises(ConnectionError):
        await advance_until_done(clock, pipeline.execute(fail, ConnectionError))
    with pytest.raises(ValueError):
        await pipeline.execute(fail, ValueError)
    assert attempts == ["ConnectionError", "ConnectionError", "ValueError"]

    fallback = FallbackOptions(action=lambda args: "spare", should_handle=KeyError)
    answered = PipelineBuilder("fb").add_fallback(fallback).build()

    async def missing() -> str:
        raise KeyError("k")

    assert await answered.execute(missing) == "spare"


@pytest.mark.parametrize("value", [(ValueError, "x"), (), 3])
def test_bad_should_handle_names_the_field(value: Any) -> None:
    with pytest.raises(InvalidOptionsError, match=r"RetryOptions\.should_handle"):
        RetryOptions(should_handle=value)


async def test_rate_limiter_shorthand_builds_a_bucket_on_the_pipeline_clock() -> None:
    clock = FakeClock()
    pipeline = PipelineBuilder("tool", clock=clock).add_rate_limiter(rate=1, burst=1).build()

    async def call() -> str:
        return "ok"

    assert await pipeline.execute(call) == "ok"
    with pytest.raises(RateLimitRejectedError) as err:
        await pipeline.execute(call)
    assert err.value.retry_after == pytest.approx(1.0)
    await clock.advance(1.0)
    assert await pipeline.execute(call) == "ok"  # refilled on the fake clock


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"rate": 5}, "rate"), ({"rate": 5, "burst": 0}, "burst"), ({"rate": -1, "burst": 2}, "rate")],
)
def test_rate_limiter_shorthand_is_validated(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError) as err:
        RateLimiterOptions(**fields)
    assert err.value.field == field
