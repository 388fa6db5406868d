"""openai 3.x (httpx2) with the resilient transport, against ``httpx2.MockTransport``."""

from __future__ import annotations

import email.utils
import logging
from datetime import timedelta

import httpx2
import openai
import pytest

from netra_resilience import BrokenCircuitError, InvalidOptionsError, ResilienceContext, use_context
from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.integrations.http.httpx2 import ResilientAsyncTransport
from netra_resilience.integrations.openai import (
    OPENAI_TRANSIENT,
    make_resilient,
    resilient_async_openai,
)
from netra_resilience.llm import llm_retry_after
from netra_resilience.outcome import Outcome
from netra_resilience.telemetry import LoggingListener, Severity
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    BASE_URL,
    FAKE_KEY,
    MESSAGES,
    Upstream,
    completion,
    http_pipeline,
    state_of,
    warm,
)


def client_for(upstream: Upstream, clock: FakeClock, **pipeline_kwargs) -> openai.AsyncOpenAI:
    pipeline = http_pipeline(clock, **pipeline_kwargs)
    return warm(
        resilient_async_openai(
            pipeline,
            inner_transport=upstream.transport(),
            api_key=FAKE_KEY,
            base_url=BASE_URL,
        )
    )


async def ask(client: openai.AsyncOpenAI, clock: FakeClock) -> str | None:
    reply = await advance_until_done(
        clock, client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    )
    return reply.choices[0].message.content


async def test_500_retry_success_with_sdk_retries_off(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(500, json={"error": {"message": "boom"}}), completion("4"))
    client = client_for(upstream, clock)
    assert client.max_retries == 0
    assert await ask(client, clock) == "4"
    assert len(upstream.calls) == 2
    assert clock.sleeps == [1.0]  # our backoff, not the SDK's 0.5 s * jitter


async def test_call_count_proves_retries_do_not_multiply(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(503, json={"error": {"message": "overloaded"}}))
    client = client_for(upstream, clock, attempts=3, minimum_throughput=50)
    with pytest.raises(openai.InternalServerError) as caught:
        await ask(client, clock)
    assert len(upstream.calls) == 3  # 3 pipeline attempts; the SDK's default would make it 9
    assert caught.value.status_code == 503
    assert "overloaded" in str(caught.value)  # the provider's body reaches the SDK error
    # Every attempt carried the SDK's first-try header: it never retried on its own.
    assert {r.headers["x-stainless-retry-count"] for r in upstream.calls} == {"0"}


async def test_429_retry_after_ms_and_http_date_are_honoured_exactly(clock: FakeClock) -> None:
    when = email.utils.format_datetime(clock.now() + timedelta(seconds=12), usegmt=True)
    upstream = Upstream(
        httpx2.Response(429, headers={"retry-after-ms": "1250"}, json={"error": {}}),
        httpx2.Response(429, headers={"retry-after": when}, json={"error": {}}),
        completion("ok"),
    )
    client = client_for(upstream, clock)
    assert await ask(client, clock) == "ok"
    # The date is absolute: after the first 1.25 s sleep, 10.75 s remain until it.
    assert clock.sleeps == [1.25, 10.75]


async def test_a_hint_above_the_cap_gives_up_with_rate_limit_error(clock: FakeClock) -> None:
    upstream = Upstream(
        httpx2.Response(429, headers={"retry-after": "3600"}, json={"error": {"message": "q"}})
    )
    client = client_for(upstream, clock, max_server_delay=120.0)
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(client, clock)
    assert len(upstream.calls) == 1
    assert clock.sleeps == []
    assert caught.value.response.headers["retry-after"] == "3600"


async def test_connect_error_is_retried_then_surfaces_as_api_connection_error(
    clock: FakeClock,
) -> None:
    upstream = Upstream(httpx2.ConnectError("refused"), completion("back"))
    client = client_for(upstream, clock, minimum_throughput=10)
    assert await ask(client, clock) == "back"

    upstream.script(httpx2.ConnectError("refused"))
    upstream.calls.clear()
    with pytest.raises(openai.APIConnectionError):
        await ask(client, clock)
    assert len(upstream.calls) == 3


async def test_malformed_json_body_is_retried_not_a_crash(clock: FakeClock) -> None:
    bad = httpx2.Response(200, headers={"content-type": "application/json"}, content=b"{not json")
    upstream = Upstream(bad, completion("parsed"))
    client = client_for(upstream, clock)
    assert await ask(client, clock) == "parsed"
    assert len(upstream.calls) == 2


async def test_4xx_is_not_retried_nor_a_breaker_failure(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(400, json={"error": {"message": "bad param"}}))
    client = client_for(upstream, clock)
    breaker = client._client._transport.pipeline.find(CircuitBreakerStrategy)  # type: ignore[attr-defined]
    for _ in range(6):
        with pytest.raises(openai.BadRequestError):
            await ask(client, clock)
    assert len(upstream.calls) == 6
    assert state_of(breaker) is CircuitState.CLOSED
    assert breaker.health.failures == 0


async def test_breaker_opens_fails_fast_and_half_open_probe_closes(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(500, json={"error": {}}))
    client = client_for(upstream, clock, attempts=1, minimum_throughput=4, break_duration=20.0)
    breaker = client._client._transport.pipeline.find(CircuitBreakerStrategy)  # type: ignore[attr-defined]
    for _ in range(4):
        with pytest.raises(openai.InternalServerError):
            await ask(client, clock)
    assert state_of(breaker) is CircuitState.OPEN
    with use_context(ResilienceContext("chat")) as ctx, pytest.raises(BrokenCircuitError) as err:
        await ask(client, clock)
    assert len(upstream.calls) == 4  # rejected without a request
    assert err.value.retry_after == pytest.approx(20.0)
    assert ctx.degradation.reason("llm") == "circuit_open"

    await clock.advance(20.0)
    upstream.script(completion("probe ok"))
    assert await ask(client, clock) == "probe ok"
    assert state_of(breaker) is CircuitState.CLOSED


async def test_make_resilient_wraps_an_existing_client_once(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(502, json={}), completion("wrapped"))
    original = openai.AsyncOpenAI(
        api_key=FAKE_KEY,
        base_url=BASE_URL,
        max_retries=5,
        default_headers={"x-team": "agents"},
        http_client=httpx2.AsyncClient(transport=upstream.transport()),
    )
    pipeline = http_pipeline(clock)
    client = warm(make_resilient(original, pipeline))
    assert client.max_retries == 0
    assert original.max_retries == 5  # the original is untouched
    assert await ask(client, clock) == "wrapped"
    assert len(upstream.calls) == 2
    assert upstream.calls[-1].headers["x-team"] == "agents"
    assert upstream.calls[-1].headers["authorization"] == f"Bearer {FAKE_KEY}"

    again = make_resilient(client, http_pipeline(clock, name="llm2"))
    transport = again._client._transport
    assert isinstance(transport, ResilientAsyncTransport)
    assert not isinstance(transport.inner, ResilientAsyncTransport)  # never stacked


def test_sdk_retries_cannot_be_turned_back_on() -> None:
    pipeline = http_pipeline(FakeClock())
    with pytest.raises(InvalidOptionsError, match="max_retries"):
        resilient_async_openai(pipeline, api_key=FAKE_KEY, max_retries=2)


def test_openai_classification_and_hint() -> None:
    request = httpx2.Request("POST", BASE_URL)

    def status_error(cls: type[openai.APIStatusError], status: int, **headers: str):
        response = httpx2.Response(status, headers=headers, request=request)
        return cls("x", response=response, body=None)

    handled = [
        openai.APIConnectionError(request=request),
        openai.APITimeoutError(request=request),
        status_error(openai.RateLimitError, 429),
        status_error(openai.InternalServerError, 500),
        status_error(openai.InternalServerError, 503),
    ]
    not_handled = [
        status_error(openai.BadRequestError, 400),
        status_error(openai.AuthenticationError, 401),
        status_error(openai.NotFoundError, 404),
        status_error(openai.InternalServerError, 500, **{"x-should-retry": "false"}),
        ValueError("a bug"),
    ]
    assert all(OPENAI_TRANSIENT(Outcome(None, e)) for e in handled)
    assert not any(OPENAI_TRANSIENT(Outcome(None, e)) for e in not_handled)
    clock = FakeClock()
    hint = llm_retry_after(clock)
    limited = status_error(openai.RateLimitError, 429, **{"retry-after-ms": "750"})
    assert hint(Outcome(None, limited)) == 0.75


async def test_api_key_never_leaks_into_errors_logs_or_degradation(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = Upstream(httpx2.Response(500, json={"error": {"message": "internal"}}))
    telemetry = LoggingListener(min_severity=Severity.DEBUG)
    client = client_for(upstream, clock, attempts=2, minimum_throughput=2, telemetry=telemetry)
    errors: list[BaseException] = []
    with use_context(ResilienceContext("chat", user_id="u")) as ctx:
        for script in (
            httpx2.Response(500, json={"error": {"message": "internal"}}),
            httpx2.Response(401, json={"error": {"message": "Incorrect API key provided"}}),
            httpx2.ConnectError("refused"),
        ):
            upstream.script(script)
            try:
                await ask(client, clock)
            except Exception as exc:
                errors.append(exc)
        try:  # the breaker is open by now
            await ask(client, clock)
        except Exception as exc:
            errors.append(exc)
    assert any(isinstance(e, BrokenCircuitError) for e in errors)
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [str(e.__cause__) for e in errors if e.__cause__ is not None]
    texts += [caplog.text, ctx.degradation.header_value(), repr(ctx.degradation.history)]
    assert all(FAKE_KEY not in text for text in texts)
    assert FAKE_KEY[-12:] not in caplog.text
    assert "circuit_opened" in caplog.text  # our own telemetry was logged too
