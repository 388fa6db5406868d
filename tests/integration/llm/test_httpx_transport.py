"""The httpx transport against respx: retries, server hints, breaker, replayed bodies."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import respx

from netra_resilience import BrokenCircuitError, PipelineBuilder, ResilienceContext, use_context
from netra_resilience.cache import CacheOptions, InMemoryTTLCache
from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.exceptions import TimeoutRejectedError
from netra_resilience.integrations.http.httpx import (
    TRANSIENT_HTTPX_FAILURE,
    ResilientAsyncTransport,
    UpstreamStatusError,
)
from netra_resilience.llm import LLM_DEPENDENCY_FAILURE
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import hang, http_pipeline, state_of

URL = "https://api.example.test/v1/items"


def make_client(clock: FakeClock, **kwargs) -> tuple[httpx.AsyncClient, ResilientAsyncTransport]:
    pipeline = http_pipeline(clock, **kwargs)
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), pipeline)
    return httpx.AsyncClient(transport=transport), transport


@respx.mock
async def test_500_is_retried_then_succeeds_and_the_body_is_replayed(clock: FakeClock) -> None:
    route = respx.post(URL).mock(
        side_effect=[httpx.Response(500, text="boom"), httpx.Response(200, json={"ok": 1})]
    )

    async def body() -> AsyncIterator[bytes]:  # a one-shot generator body
        yield b'{"q":'
        yield b"1}"

    client, _ = make_client(clock)
    async with client:
        response = await advance_until_done(clock, client.post(URL, content=body()))
    assert response.status_code == 200
    assert response.json() == {"ok": 1}
    assert route.call_count == 2
    assert [call.request.content for call in route.calls] == [b'{"q":1}', b'{"q":1}']
    assert clock.sleeps == [1.0]


@respx.mock
async def test_429_retry_after_ms_is_honoured_exactly(clock: FakeClock) -> None:
    respx.get(URL).mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after-ms": "2500"}),
            httpx.Response(200, json={}),
        ]
    )
    client, _ = make_client(clock)
    async with client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.status_code == 200
    assert clock.sleeps == [2.5]


@respx.mock
async def test_429_http_date_is_honoured_exactly_on_the_fake_clock(clock: FakeClock) -> None:
    when = email.utils.format_datetime(clock.now() + timedelta(seconds=7), usegmt=True)
    respx.get(URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200)]
    )
    client, _ = make_client(clock)
    async with client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.status_code == 200
    assert clock.sleeps == [7.0]


@respx.mock
async def test_a_hint_above_the_cap_gives_up_and_returns_the_429(clock: FakeClock) -> None:
    route = respx.get(URL).mock(
        return_value=httpx.Response(429, headers={"retry-after": "600"}, json={"e": "slow down"})
    )
    client, _ = make_client(clock, max_server_delay=60.0)
    async with client:
        response = await advance_until_done(clock, client.get(URL))
    assert route.call_count == 1
    assert clock.sleeps == []
    # The caller sees the provider's own response, body intact.
    assert response.status_code == 429
    assert response.json() == {"e": "slow down"}
    assert response.headers["retry-after"] == "600"


@respx.mock
async def test_connect_errors_are_retried_and_finally_raised_unchanged(clock: FakeClock) -> None:
    route = respx.get(URL).mock(side_effect=httpx.ConnectError("refused"))
    client, _ = make_client(clock, minimum_throughput=10)
    async with client:
        with pytest.raises(httpx.ConnectError):
            await advance_until_done(clock, client.get(URL))
    assert route.call_count == 3

    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200)]
    client, _ = make_client(clock)
    async with client:
        assert (await advance_until_done(clock, client.get(URL))).status_code == 200


@respx.mock
async def test_x_should_retry_overrides_the_status(clock: FakeClock) -> None:
    no = respx.get(URL + "/no").mock(
        return_value=httpx.Response(503, headers={"x-should-retry": "false"})
    )
    yes = respx.get(URL + "/yes").mock(
        side_effect=[httpx.Response(400, headers={"x-should-retry": "true"}), httpx.Response(200)]
    )
    plain_4xx = respx.get(URL + "/400").mock(return_value=httpx.Response(400))
    client, _ = make_client(clock)
    async with client:
        assert (await advance_until_done(clock, client.get(URL + "/no"))).status_code == 503
        assert (await advance_until_done(clock, client.get(URL + "/yes"))).status_code == 200
        assert (await advance_until_done(clock, client.get(URL + "/400"))).status_code == 400
    assert (no.call_count, yes.call_count, plain_4xx.call_count) == (1, 2, 1)


async def test_failed_attempts_release_their_connection_before_the_retry(clock: FakeClock) -> None:
    closed: list[int] = []

    class Body(httpx.AsyncByteStream):
        def __init__(self, n: int) -> None:
            self.n = n

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"error body"

        async def aclose(self) -> None:
            closed.append(self.n)

    attempts = iter(range(10))

    def handler(request: httpx.Request) -> httpx.Response:
        n = next(attempts)
        if n < 2:
            return httpx.Response(502, stream=Body(n))
        return httpx.Response(200, json={"n": n})

    pipeline = http_pipeline(clock)
    sleeps_seen_closed: list[list[int]] = []
    original_sleep = clock.sleep

    async def spying_sleep(seconds: float) -> None:
        sleeps_seen_closed.append(list(closed))
        await original_sleep(seconds)

    clock.sleep = spying_sleep  # type: ignore[method-assign]
    transport = ResilientAsyncTransport(httpx.MockTransport(handler), pipeline)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.json() == {"n": 2}
    assert sleeps_seen_closed == [[0], [0, 1]]  # each failed body closed before its backoff


@respx.mock
async def test_the_last_failed_response_reaches_the_client_with_its_body(clock: FakeClock) -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(503, json={"error": "down"}))
    client, _ = make_client(clock, minimum_throughput=10)
    async with client:
        response = await advance_until_done(clock, client.get(URL))
    assert route.call_count == 3
    assert response.status_code == 503
    assert response.json() == {"error": "down"}


async def test_attempt_timeout_fires_on_the_fake_clock_and_is_retried(clock: FakeClock) -> None:
    state = {"n": 0, "hang_all": False}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1 or state["hang_all"]:
            await hang()
        return httpx.Response(200, json={"attempt": state["n"]})

    pipeline = http_pipeline(clock, attempt_timeout=5.0, minimum_throughput=10)
    transport = ResilientAsyncTransport(httpx.MockTransport(handler), pipeline)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.json() == {"attempt": 2}
    assert 5.0 in clock.timeouts
    assert clock.monotonic() == pytest.approx(1000.0 + 5.0 + 1.0)

    state["hang_all"] = True
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(TimeoutRejectedError):
            await advance_until_done(clock, client.get(URL))


@respx.mock
async def test_malformed_json_is_a_retryable_failure_when_validated(clock: FakeClock) -> None:
    route = respx.get(URL).mock(
        side_effect=[
            httpx.Response(200, headers={"content-type": "application/json"}, content=b'{"tru'),
            httpx.Response(200, json={"fine": True}),
        ]
    )
    transport = ResilientAsyncTransport(
        httpx.AsyncHTTPTransport(), http_pipeline(clock), validate_json=True
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.json() == {"fine": True}
    assert route.call_count == 2


@respx.mock
async def test_breaker_opens_fails_fast_with_stale_cache_then_half_open_probe_closes(
    clock: FakeClock,
) -> None:
    """Call level: a cache around a function using the resilient client answers stale."""
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={"v": "fresh"}))
    inner = http_pipeline(clock, attempts=1, minimum_throughput=4, break_duration=30.0)
    transport = ResilientAsyncTransport(httpx.AsyncHTTPTransport(), inner)
    breaker = inner.find(CircuitBreakerStrategy)
    assert breaker is not None
    outer = (
        PipelineBuilder("items", clock=clock)
        .add_cache(
            CacheOptions(
                backend=InMemoryTTLCache(clock=clock),
                key=lambda ctx, args, kwargs: args[1],
                ttl=0,
                stale_ttl=3600,
                stale_on=LLM_DEPENDENCY_FAILURE,
            )
        )
        .build()
    )

    async with httpx.AsyncClient(transport=transport) as client:

        async def fetch(client: httpx.AsyncClient, url: str) -> dict[str, str]:
            response = await client.get(url)
            if response.status_code >= 400:
                raise UpstreamStatusError(response.status_code)
            return dict(response.json())

        with use_context(ResilienceContext("req", user_id="u1")) as ctx:
            assert await outer.execute(fetch, client, URL) == {"v": "fresh"}
            assert not ctx.degradation
        route.return_value = httpx.Response(500)
        for _ in range(3):  # 1 success + 3 failures: ratio 0.75 over throughput 4
            with use_context(ResilienceContext("req", user_id="u1")) as ctx:
                assert await outer.execute(fetch, client, URL) == {"v": "fresh"}
                assert ctx.degradation.reason("items") == "stale_cache"
        assert state_of(breaker) is CircuitState.OPEN
        calls_when_opened = route.call_count

        with use_context(ResilienceContext("req", user_id="u1")) as ctx:
            assert await outer.execute(fetch, client, URL) == {"v": "fresh"}
            assert ctx.degradation.as_dict() == {"llm": "circuit_open", "items": "stale_cache"}
        assert route.call_count == calls_when_opened  # failed fast: no upstream call
        with pytest.raises(BrokenCircuitError):
            await client.get(URL)  # without the cache, the rejection itself

        await clock.advance(30.0)  # break over: the next call is the half-open probe
        route.return_value = httpx.Response(200, json={"v": "recovered"})
        with use_context(ResilienceContext("req", user_id="u1")) as ctx:
            assert await outer.execute(fetch, client, URL) == {"v": "recovered"}
            assert not ctx.degradation
        assert state_of(breaker) is CircuitState.CLOSED


async def test_a_mid_stream_read_error_reaches_the_breaker(clock: FakeClock) -> None:
    class Cut(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"data: {}\n\n"
            raise httpx.RemoteProtocolError("peer closed connection")

        async def aclose(self) -> None:
            return None

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Cut())

    pipeline = http_pipeline(clock, attempts=1, minimum_throughput=10)
    breaker = pipeline.find(CircuitBreakerStrategy)
    assert breaker is not None
    transport = ResilientAsyncTransport(httpx.MockTransport(handler), pipeline)
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("GET", URL) as response,
    ):
        assert response.status_code == 200  # headers arrived: the attempt succeeded
        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in response.aiter_bytes():
                pass
    health = breaker.health
    assert (health.throughput, health.failures) == (2, 1)  # the headers' success + the cut


def test_transient_predicate_for_pipelines_behind_the_transport() -> None:
    from netra_resilience.outcome import Outcome

    assert TRANSIENT_HTTPX_FAILURE(Outcome(None, httpx.ReadTimeout("slow")))
    assert TRANSIENT_HTTPX_FAILURE(Outcome(None, UpstreamStatusError(503)))
    assert not TRANSIENT_HTTPX_FAILURE(Outcome(None, UpstreamStatusError(500, transient=False)))
    assert not TRANSIENT_HTTPX_FAILURE(Outcome(None, ValueError("bug")))
    assert not TRANSIENT_HTTPX_FAILURE(Outcome(httpx.Response(200)))


@respx.mock
async def test_deeply_nested_json_is_a_handled_malformed_body_not_a_crash(
    clock: FakeClock,
) -> None:
    nested = b"[" * 200_000  # json.loads raises RecursionError, not ValueError
    route = respx.get(URL).mock(
        side_effect=[
            httpx.Response(200, headers={"content-type": "application/json"}, content=nested),
            httpx.Response(200, json={"fine": True}),
        ]
    )
    transport = ResilientAsyncTransport(
        httpx.AsyncHTTPTransport(), http_pipeline(clock), validate_json=True
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.json() == {"fine": True}
    assert route.call_count == 2


@respx.mock
async def test_a_non_ascii_digit_retry_after_is_ignored_not_a_crash(clock: FakeClock) -> None:
    closed: list[bool] = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"busy"

        async def aclose(self) -> None:
            closed.append(True)

    # b"\xb2" decodes (latin-1) to "\u00b2": str.isdigit() is True but int() rejects it.
    route = respx.get(URL).mock(
        side_effect=[
            httpx.Response(503, headers=[(b"retry-after", b"\xb2")], stream=Body()),
            httpx.Response(200, json={}),
        ]
    )
    client, _ = make_client(clock)
    async with client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.status_code == 200
    assert route.call_count == 2
    assert clock.sleeps == [1.0]  # the bad hint is ignored: the retry's own delay
    assert closed == [True]  # the failed attempt's connection was released


@respx.mock
async def test_a_non_ascii_header_on_the_last_failed_response_reaches_the_client(
    clock: FakeClock,
) -> None:
    respx.get(URL).mock(
        return_value=httpx.Response(503, headers=[(b"x-note", b"caf\xe9")], text="down")
    )
    client, _ = make_client(clock, attempts=2)
    async with client:
        response = await advance_until_done(clock, client.get(URL))
    assert response.status_code == 503
    assert response.headers.raw[0] == (b"x-note", b"caf\xe9")
    assert response.text == "down"
