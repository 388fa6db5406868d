"""A provider's 429 ``Retry-After`` slows the LLM path down for every caller (the preset's
shared pause), and waiting callers do not come back in one synchronised wave.

50 requests/s for 10 s on the fake clock, the real openai SDK against a fake provider that
answers 429 with ``Retry-After: 3`` to every request in [1 s, 4 s).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx2

from netra_resilience import Resilience, ResilienceContext, use_context
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply
from netra_resilience.testing import FakeClock
from tests.integration.llm.helpers import MESSAGES, Upstream, completion, plain_client

RATE = 50  # requests per second
STEP = 1.0 / RATE


async def test_one_429_pauses_every_caller_and_they_resume_without_a_wave() -> None:
    clock = FakeClock()
    start = clock.monotonic()
    arrivals: list[float] = []

    def provider(request: httpx2.Request) -> httpx2.Response:
        now = clock.monotonic() - start
        arrivals.append(now)
        if 1.0 <= now < 4.0:
            return httpx2.Response(429, headers={"Retry-After": "3"}, json={"error": {}})
        return httpx2.Response(200, json=completion("fresh"))

    resilience = Resilience(clock=clock)
    llm = ResilientOpenAI(
        plain_client(Upstream(provider)),
        resilience.llm(canned_reply=canned_reply("busy"), attempt_timeout=5, total_timeout=20),
    )
    answers: Counter[str] = Counter()

    async def user(n: int) -> None:
        with use_context(ResilienceContext("chat", user_id=f"u{n}")):
            reply = await llm.create("chat", {"model": "gpt-x", "messages": MESSAGES})
        answers[str(reply.choices[0].message.content)] += 1

    tasks = []
    for n in range(10 * RATE):
        tasks.append(asyncio.ensure_future(user(n)))
        await clock.advance(STEP)
    for _ in range(200):  # let retries sleeping on the fake clock finish
        await clock.advance(0.1)
    await asyncio.gather(*tasks)

    first_429 = next(t for t in arrivals if t >= 1.0)
    during_pause = [t for t in arrivals if first_429 < t < first_429 + 3.0]
    assert len(during_pause) <= 5, during_pause  # was ~150 without the shared pause
    # resume: no 100 ms window above 2x the steady rate (5 per 100 ms)
    windows = Counter(int(t * 10) for t in arrivals if t >= first_429 + 3.0)
    assert max(windows.values()) <= 2 * RATE // 10, sorted(windows.items())[:10]
    assert sum(answers.values()) == 10 * RATE  # every caller answered (fresh or canned)
    assert answers["fresh"] > 0 and answers["busy"] > 0
    print(f"upstream calls in the pause: {len(during_pause)}; busiest 100 ms after it: "
          f"{max(windows.values())}; answers: {dict(answers)}")
