"""An exhausted budget reaches an HTTP caller as 429 with Retry-After (the window's reset)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from netra_resilience import Resilience
from netra_resilience.integrations.fastapi import install
from netra_resilience.llm import Budget, BudgetLimit, LlmRequest
from netra_resilience.testing import FakeClock, advance_until_done


async def test_budget_exhausted_is_429_with_retry_after_and_the_flag() -> None:
    clock = FakeClock()  # 2026-01-01 00:00:00 UTC: the minute window resets in 60 s
    resilience = Resilience(clock=clock)
    llm = resilience.llm(attempt_timeout=5, total_timeout=20, cache=None)
    budget = Budget([BudgetLimit.requests_per_minute(1)], clock=clock)
    app = FastAPI()
    install(app, resilience)

    async def provider(request: LlmRequest) -> str:
        async with await budget.reserve(request, dependency="llm"):
            return "answer"

    @app.post("/ask")
    async def ask() -> dict[str, Any]:
        return {"answer": await llm.execute(provider, LlmRequest("chat", {"model": "m"}))}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        first = await advance_until_done(clock, http.post("/ask"))
        second = await advance_until_done(clock, http.post("/ask"))
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "60"
    assert "llm=budget_exhausted" in second.headers["netra-degraded"]
    assert second.json()["title"] == "Too Many Requests"
