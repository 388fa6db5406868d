"""The README's overload example, run as printed on a fake clock: under overload low priority
is shed (a 503 with Retry-After and the shed flag over FastAPI) while high priority waits
for a seat and answers."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from netra_resilience.admission import AdmissionStrategy, Priority
from netra_resilience.exceptions import AdmissionRejectedError
from netra_resilience.integrations.fastapi import install
from netra_resilience.testing import FakeClock, advance_until_done

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def load(clock: FakeClock) -> dict[str, Any]:
    section = README.split("### Overload: admission control, retry budgets, hedging", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code
    scope: dict[str, Any] = {"__name__": "readme_admission", "clock": clock}
    exec(code.group(1).replace("Resilience()", "Resilience(clock=clock)"), scope)

    async def complete(prompt: str) -> str:
        await clock.sleep(1.0)
        return f"answer to {prompt}"

    scope["complete"] = complete
    return scope


async def test_low_priority_is_shed_and_high_priority_answers() -> None:
    clock = FakeClock()
    scope = load(clock)
    ask = scope["ask"]
    assert await advance_until_done(clock, ask("hi", "acme", Priority.NORMAL)) == "answer to hi"
    # The limit starts at 20 with a queue of 100: 20 run, LOW may queue 40, the rest is shed.
    low = [asyncio.ensure_future(ask(f"l{i}", "acme", Priority.LOW)) for i in range(100)]
    await clock.settle()
    high = [asyncio.ensure_future(ask(f"h{i}", "globex", Priority.HIGH)) for i in range(10)]
    done = await advance_until_done(clock, asyncio.gather(*low, *high, return_exceptions=True))
    low_results, high_results = done[:100], done[100:]
    shed = [r for r in low_results if isinstance(r, AdmissionRejectedError)]
    assert len(shed) == 40 and all(r.priority == Priority.LOW for r in shed)
    assert high_results == [f"answer to h{i}" for i in range(10)]
    limiter = scope["llm"].find(AdmissionStrategy).limiter
    assert limiter.in_flight == 0 and limiter.queued == 0
    await scope["resilience"].aclose()


async def test_a_shed_request_is_a_503_with_retry_after() -> None:
    clock = FakeClock()
    scope = load(clock)
    app = FastAPI()
    install(app, scope["resilience"])

    @app.get("/ask")
    async def route(priority: str = "normal") -> dict[str, str]:
        return {"answer": await scope["ask"]("q", "acme", Priority[priority.upper()])}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        # Warm up one latency sample, then hold every seat and every LOW queue place.
        await advance_until_done(clock, client.get("/ask"))
        held = [
            asyncio.ensure_future(scope["ask"](f"x{i}", "acme", Priority.NORMAL)) for i in range(80)
        ]
        await clock.settle()
        response = await client.get("/ask", params={"priority": "background"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["dependency"] == "llm"  # the name only, nothing internal
        await advance_until_done(clock, asyncio.gather(*held))
    await scope["resilience"].aclose()
