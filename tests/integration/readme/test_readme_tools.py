"""The README's tools example, run as printed (on a fake clock, against a mock payments API):
the refund goes out with an Idempotency-Key; when the answer is lost the agent says so and
the upstream did the work once."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from netra_resilience.engine import RunRequest
from netra_resilience.integrations.http.httpx import ResilientAsyncTransport
from netra_resilience.testing import FakeClock, advance_until_done

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


class Payments:
    def __init__(self, *, stall: bool) -> None:
        self.stall = stall
        self.keys: list[str | None] = []
        self.refunds: set[str] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        self.keys.append(key)
        if key is not None:
            self.refunds.add(key)
        if self.stall:
            await asyncio.Event().wait()
        return httpx.Response(200, json={"refunded": True})


async def run(stall: bool) -> tuple[Any, Payments]:
    clock = FakeClock()
    section = README.split("### Tools and side effects", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code
    scope: dict[str, Any] = {"__name__": "readme_tools", "clock": clock}
    exec(code.group(1).replace("Resilience()", "Resilience(clock=clock)"), scope)
    payments = Payments(stall=stall)
    pipeline = scope["resilience"].pipeline("payments").build()
    scope["payments"] = httpx.AsyncClient(
        base_url="https://payments.example",
        transport=ResilientAsyncTransport(httpx.MockTransport(payments), pipeline),
    )
    result = await advance_until_done(
        clock, scope["agent"].run(RunRequest("refund o-42", run_id="r1"))
    )
    await scope["resilience"].aclose()
    return result, payments


async def test_the_refund_carries_an_idempotency_key() -> None:
    result, payments = await run(stall=False)
    assert result.output == "Refunded."
    assert len(payments.keys) == 1 and payments.keys[0] is not None


async def test_a_lost_answer_is_reported_and_the_refund_happened_once() -> None:
    result, payments = await run(stall=True)
    assert result.output == "The refund may have gone through; I'll check before trying again."
    assert len(payments.keys) == 3 and len(set(payments.keys)) == 1  # 3 attempts, one key
    assert len(payments.refunds) == 1
    assert result.degradation == {"refund": "outcome_unknown"}
