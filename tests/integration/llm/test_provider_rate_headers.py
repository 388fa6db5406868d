"""Provider rate-limit headers on a successful response pause the limiter before a 429."""

from __future__ import annotations

from datetime import UTC, timedelta

import httpx2
import pytest

from netra_resilience import RateLimitRejectedError, ResilienceContext, use_context
from netra_resilience.integrations.openai import ResilientOpenAI, resilient_async_openai
from netra_resilience.llm import rate_limit_delay
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.retry import RetryOptions
from netra_resilience.testing import FakeClock, advance_until_done
from tests.integration.llm.helpers import (
    FAKE_KEY,
    MESSAGES,
    Upstream,
    completion,
    plain_client,
    warm,
)

SPENT = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}


def test_reset_headers_of_openai_and_anthropic(clock: FakeClock) -> None:
    assert rate_limit_delay(SPENT, clock) == 2.0
    openai_tokens = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30.5s"}
    assert rate_limit_delay(openai_tokens, clock) == 90.5
    assert rate_limit_delay({**SPENT, "x-ratelimit-reset-requests": "20ms"}, clock) == 0.02
    reset = (clock.now() + timedelta(seconds=7)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    anthropic = {
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": reset,
    }
    assert rate_limit_delay(anthropic, clock) == pytest.approx(7.0)
    assert rate_limit_delay({**SPENT, "x-ratelimit-remaining-requests": "12"}, clock) is None
    for bad in ("soon", "2x", "-1s", "99999s", "2026-01-01T00:00:00", ""):
        assert rate_limit_delay({**SPENT, "x-ratelimit-reset-requests": bad}, clock) is None, bad
    assert rate_limit_delay(None, clock) is None


async def test_a_spent_quota_pauses_callers_at_the_call_level(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(200, json=completion("ok"), headers=SPENT))
    pipeline = standard_llm_pipeline(clock=clock, retry=RetryOptions(max_attempts=1))
    llm = ResilientOpenAI(plain_client(upstream), pipeline)

    async def ask() -> str:
        with use_context(ResilienceContext("chat")):
            call = llm.chat.completions.create(model="gpt-x", messages=MESSAGES)
            reply = await advance_until_done(clock, call)
        return str(reply.choices[0].message.content)

    assert await ask() == "ok"
    with pytest.raises(RateLimitRejectedError):
        await ask()  # paused before the provider's 429: nothing sent
    assert len(upstream.calls) == 1
    await clock.advance(2.0)
    upstream.script(completion("again"))
    assert await ask() == "again"


async def test_a_spent_quota_pauses_the_transport_pipeline(clock: FakeClock) -> None:
    upstream = Upstream(httpx2.Response(200, json=completion("ok"), headers=SPENT))
    pipeline = standard_llm_pipeline(clock=clock, retry=RetryOptions(max_attempts=1))
    client = warm(
        resilient_async_openai(
            pipeline,
            inner_transport=upstream.transport(),
            api_key=FAKE_KEY,
            base_url="http://llm.test/v1",
        )
    )
    await advance_until_done(
        clock, client.chat.completions.create(model="gpt-x", messages=MESSAGES)
    )
    with pytest.raises(RateLimitRejectedError):
        await advance_until_done(
            clock, client.chat.completions.create(model="gpt-x", messages=MESSAGES)
        )
    assert len(upstream.calls) == 1
