"""The resilient transports send the call's idempotency key (httpx and httpx2 alike)."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest

from netra_resilience import Resilience, RetryOptions
from netra_resilience.effects import effect_scope
from netra_resilience.integrations.http import httpx as httpx_adapter
from netra_resilience.integrations.http import httpx2 as httpx2_adapter
from netra_resilience.testing import FakeClock, advance_until_done

LIBRARIES = [(httpx, httpx_adapter), (httpx2, httpx2_adapter)]


def client(lib: Any, adapter: Any, clock: FakeClock, seen: list[tuple[str, str | None]]) -> Any:
    statuses = [503]  # the first POST is refused once, so the transport retries it

    def handle(request: Any) -> Any:
        seen.append((request.method, request.headers.get("idempotency-key")))
        if request.method == "POST" and statuses:
            return lib.Response(statuses.pop(), json={"error": "busy"})
        return lib.Response(200, json={"ok": True})

    pipeline = (
        Resilience(clock=clock)
        .pipeline("http")
        .add_retry(RetryOptions(max_attempts=2, delay=0.1))
        .build()
    )
    transport = adapter.ResilientAsyncTransport(lib.MockTransport(handle), pipeline)
    return lib.AsyncClient(transport=transport, base_url="http://tool.test")


@pytest.mark.parametrize(("lib", "adapter"), LIBRARIES)
async def test_each_non_safe_request_of_an_attempt_gets_its_own_stable_key(
    clock: FakeClock, lib: Any, adapter: Any
) -> None:
    seen: list[tuple[str, str | None]] = []
    async with client(lib, adapter, clock, seen) as http:

        async def tool() -> None:
            await http.get("/customer")
            await http.post("/refund", json={"amount": 5})
            await http.post("/note", json={"text": "refunded"})
            await http.post("/mail", headers={"Idempotency-Key": "mine"}, json={})

        with effect_scope("unsafe", idempotency_key="k1") as scope:
            await advance_until_done(clock, tool())
            seen.append(("attempt", None))
            scope.begin_attempt()  # a repeated attempt of the same call
            await advance_until_done(clock, tool())
        await http.post("/outside")  # no declared call: no key

    assert seen == [
        ("GET", None),  # a safe method needs no key
        ("POST", "k1"),
        ("POST", "k1"),  # the transport's retry of the 503: the same key
        ("POST", "k1.2"),  # another request of the same attempt: its own key
        ("POST", "mine"),  # a key the caller set is kept
        ("attempt", None),
        ("GET", None),
        ("POST", "k1"),  # the repeated attempt sends the same keys again
        ("POST", "k1.2"),
        ("POST", "mine"),
        ("POST", None),
    ]
