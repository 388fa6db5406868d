"""Options given to the LLM preset keep their timing and get the LLM classification for the
fields left at the generic defaults (so tuning the delay never makes a 400 retried)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest

from netra_resilience import (
    BrokenCircuitError,
    CircuitBreakerOptions,
    Resilience,
    RetryOptions,
)
from netra_resilience.testing import FakeClock, advance_until_done


class FakeResponse:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class StatusError(Exception):
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.response = FakeResponse(headers or {})


async def test_tuned_retry_still_gives_up_on_a_bad_request() -> None:
    clock = FakeClock()
    pipeline = Resilience(clock=clock).llm(
        cache=None, retry=RetryOptions(max_attempts=3, delay=0.1, max_delay=0.5)
    )
    calls = 0

    async def bad_request() -> str:
        nonlocal calls
        calls += 1
        raise StatusError(400)

    with pytest.raises(StatusError):
        await pipeline.execute(bad_request)
    assert calls == 1  # the generic default would have retried it 3 times


async def test_tuned_retry_honours_an_http_date_retry_after_on_the_runtime_clock() -> None:
    clock = FakeClock()
    pipeline = Resilience(clock=clock).llm(
        cache=None, retry=RetryOptions(max_attempts=2, delay=0.1, use_jitter=False)
    )
    when = format_datetime(clock.now() + timedelta(seconds=7), usegmt=True)
    calls: list[float] = []

    async def limited() -> str:
        calls.append(clock.monotonic())
        if len(calls) == 1:
            raise StatusError(429, {"retry-after": when})
        return "ok"

    assert await advance_until_done(clock, pipeline.execute(limited)) == "ok"
    assert calls[1] - calls[0] == pytest.approx(7.0, abs=1.0)


async def test_tuned_breaker_ignores_the_callers_bad_requests() -> None:
    clock = FakeClock()
    pipeline = Resilience(clock=clock).llm(
        cache=None,
        retry=RetryOptions(max_attempts=1),
        circuit_breaker=CircuitBreakerOptions(
            failure_ratio=0.5, minimum_throughput=2, sampling_duration=200, break_duration=5
        ),
    )

    async def bad_request() -> str:
        raise StatusError(422)

    async def unavailable() -> str:
        raise StatusError(503)

    for _ in range(5):  # the generic default would open after the second one
        with pytest.raises(StatusError):
            await pipeline.execute(bad_request)
    for _ in range(5):  # 5 x 503 after 5 x 422: 50 % failures, the breaker opens
        with pytest.raises(StatusError):
            await pipeline.execute(unavailable)
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(unavailable)


async def test_an_explicit_predicate_is_kept() -> None:
    clock = FakeClock()
    pipeline = Resilience(clock=clock).llm(
        cache=None,
        retry=RetryOptions(max_attempts=2, delay=0.0, should_handle=StatusError),
    )
    calls = 0

    async def bad_request() -> str:
        nonlocal calls
        calls += 1
        raise StatusError(400)

    with pytest.raises(StatusError):
        await advance_until_done(clock, pipeline.execute(bad_request))
    assert calls == 2
