"""Through ``install()``, one caller never receives another caller's cached answer.

Anonymous requests bypass the per-caller LLM cache; ``identify=`` names the caller from the
connection scope so each gets (only) their own stale answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from netra_resilience import Resilience
from netra_resilience.integrations.fastapi import CurrentDegradation, install
from netra_resilience.testing import FakeClock, advance_until_done


class Provider:
    def __init__(self) -> None:
        self.down = False

    async def __call__(self, question: str) -> str:
        if self.down:
            raise ConnectionError("provider down")
        return f"private answer to {question}"


def make_app(identify: Callable[[Any], str | None] | None) -> tuple[FastAPI, Provider, FakeClock]:
    clock = FakeClock()
    resilience = Resilience(clock=clock)
    llm = resilience.llm(attempt_timeout=5, total_timeout=20)
    provider = Provider()
    app = FastAPI()
    install(app, resilience, identify=identify)

    @app.post("/ask")
    async def ask(body: dict[str, str], degradation: CurrentDegradation) -> dict[str, Any]:
        try:
            answer = await llm.execute(provider, body["question"])
        except ConnectionError:
            answer = None
        return {"answer": answer, "degraded": degradation.as_dict()}

    return app, provider, clock


def user_header(scope: Any) -> str | None:
    headers = dict(scope.get("headers") or [])
    value = headers.get(b"x-user")
    return value.decode() if value else None


async def post(app: FastAPI, clock: FakeClock, user: str | None) -> dict[str, Any]:
    headers = {"x-user": user} if user else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await advance_until_done(
            clock, http.post("/ask", json={"question": "my balance?"}, headers=headers)
        )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_two_anonymous_callers_never_share_an_answer() -> None:
    app, provider, clock = make_app(identify=None)
    assert (await post(app, clock, None))["answer"] == "private answer to my balance?"
    provider.down = True
    second = await post(app, clock, None)  # another anonymous user, same question
    assert second["answer"] is None
    assert "llm" not in second["degraded"] or second["degraded"]["llm"] != "stale_cache"


async def test_identified_callers_get_only_their_own_stale_answer() -> None:
    app, provider, clock = make_app(identify=user_header)
    assert (await post(app, clock, "u1"))["answer"] == "private answer to my balance?"
    provider.down = True
    mine = await post(app, clock, "u1")
    assert mine == {"answer": "private answer to my balance?", "degraded": {"llm": "stale_cache"}}
    theirs = await post(app, clock, "u2")
    assert theirs["answer"] is None


async def test_a_failing_identify_hook_leaves_the_caller_anonymous() -> None:
    def broken(scope: Any) -> str | None:
        raise RuntimeError("token store down")

    app, provider, clock = make_app(identify=broken)
    assert (await post(app, clock, "u1"))["answer"] == "private answer to my balance?"
    provider.down = True
    assert (await post(app, clock, "u1"))["answer"] is None  # nothing was cached anonymously
