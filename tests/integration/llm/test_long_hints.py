"""A valid Retry-After is honoured however large: above a consumer's cap it means give up
(retry), break for the cap (breaker) or pause for the cap (limiter) — never "no hint"."""

from __future__ import annotations

import httpx
import pytest
import respx

from netra_resilience import CircuitBreakerOptions, PipelineBuilder, RateLimiterOptions
from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.integrations.http.httpx import ResilientAsyncTransport
from netra_resilience.llm import LLM_BREAKER_FAILURE, llm_retry_after
from netra_resilience.rate_limiter import TokenBucketLimiter
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import http_pipeline

URL = "https://api.example.test/v1/items"
HINTS = ["100000", "Fri, 31 Dec 9999 23:59:59 GMT"]


@pytest.mark.parametrize("hint", HINTS)
@respx.mock
async def test_retry_gives_up_on_a_hint_above_its_cap(clock: FakeClock, hint: str) -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(503, headers={"Retry-After": hint}))
    pipeline = http_pipeline(clock, attempts=3, delay=1.0, max_server_delay=60.0, breaker=False)
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), pipeline)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.status_code == 503  # the upstream's own answer, passed through
    assert route.call_count == 1  # no second request after the normal backoff
    assert clock.sleeps == []


@pytest.mark.parametrize("hint", HINTS)
@respx.mock
async def test_a_breaker_lengthened_by_a_huge_hint_breaks_for_its_cap(
    clock: FakeClock, hint: str
) -> None:
    respx.get(URL).mock(return_value=httpx.Response(503, headers={"Retry-After": hint}))
    pipeline = (
        PipelineBuilder("llm", clock=clock)
        .add_circuit_breaker(
            CircuitBreakerOptions(
                failure_ratio=0.5,
                minimum_throughput=2,
                break_duration=5.0,
                max_break_duration=120.0,
                should_handle=LLM_BREAKER_FAILURE,
                retry_after=llm_retry_after(clock),
            )
        )
        .build()
    )
    breaker = pipeline.find(CircuitBreakerStrategy)
    assert breaker is not None
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), pipeline)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            assert (await client.get(URL)).status_code == 503
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(120.0)  # the cap, not the static 5 s


@respx.mock
async def test_a_huge_hint_pauses_the_limiter_for_max_pause(clock: FakeClock) -> None:
    respx.get(URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "100000"}))
    limiter = TokenBucketLimiter(rate=100, burst=10, clock=clock)
    pipeline = (
        PipelineBuilder("tool", clock=clock)
        .add_rate_limiter(RateLimiterOptions(limiter=limiter, max_pause=60.0,
                                             pause_hint=llm_retry_after(clock)))
        .build()
    )
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), pipeline)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).status_code == 429
    assert limiter.paused_until == pytest.approx(clock.monotonic() + 60.0)


# Arabic-Indic and fullwidth "30", sent as UTF-8 bytes
@pytest.mark.parametrize("hint", ["\u0663\u0660", "\uff13\uff10", "1e3", "inf"])
@respx.mock
async def test_non_ascii_or_non_decimal_delays_are_no_hint(clock: FakeClock, hint: str) -> None:
    route = respx.get(URL).mock(
        side_effect=[
            httpx.Response(503, headers=[(b"Retry-After", hint.encode())]),
            httpx.Response(200),
        ]
    )
    pipeline = http_pipeline(clock, attempts=2, delay=1.0, breaker=False)
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), pipeline)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.status_code == 200 and route.call_count == 2
    assert clock.sleeps == [1.0]  # the normal backoff, not 30 s
