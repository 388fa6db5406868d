"""The live status page: gated, rows per dependency with breaker state and how long it held,
failure types only, degraded answers by reason and p50/p99; no work without a watcher."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from netra_resilience import (
    CircuitBreakerOptions,
    Degradation,
    DegradationReason,
    Dependency,
    FallbackOptions,
    InvalidOptionsError,
    Resilience,
)
from netra_resilience.integrations.fastapi import RequestStats, install, status_router
from netra_resilience.integrations.fastapi._status import _Snapshots
from netra_resilience.testing import FakeClock

SECRET = "sk-live-SECRET-in-an-upstream-message"


class UpstreamDown(ConnectionError):
    pass


def app_with_status(clock: FakeClock, *, details: Any = True, dependencies: int = 1) -> FastAPI:
    resilience = Resilience(clock=clock)
    llm = resilience.add(
        Dependency(
            "llm",
            "important",
            strategies=[
                FallbackOptions(action=lambda _: "stale", reason=DegradationReason.STALE_CACHE),
                CircuitBreakerOptions(minimum_throughput=2, failure_ratio=0.5, break_duration=30),
            ],
        )
    )
    for i in range(dependencies - 1):
        resilience.add(Dependency(f"dep{i:02d}", "optional", strategies=[CircuitBreakerOptions()]))
    app = FastAPI()
    state = {"up": True}

    async def ask() -> str:
        if not state["up"]:
            raise UpstreamDown(f"refused for key {SECRET}")
        return "fresh"

    @app.get("/chat")
    async def chat() -> dict[str, str]:
        await clock.sleep(0)
        return {"answer": await llm.execute(ask)}

    @app.post("/break")
    async def breaks() -> None:
        state["up"] = False

    install(app, resilience, details=details, status_path="/status")
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_rows_show_breaker_state_how_long_and_the_failure_type_only(
    clock: FakeClock,
) -> None:
    app = app_with_status(clock)
    async with client(app) as http:
        for _ in range(3):
            assert (await http.get("/chat")).json() == {"answer": "fresh"}
        await http.post("/break")
        for _ in range(3):  # two failures open the breaker; the fallback answers all three
            assert (await http.get("/chat")).json() == {"answer": "stale"}
        await clock.advance(12)
        response = await http.get("/status/snapshot")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    (llm,) = document["dependencies"]
    assert llm["name"] == "llm" and llm["criticality"] == "important"
    assert llm["breaker"] == "open" and llm["held_seconds"] == pytest.approx(12, abs=0.5)
    assert llm["last_failure"] == "UpstreamDown"
    # 3 + 3 chats and the /break call; the page's own requests are not counted
    assert document["requests"]["requests"] == 7
    assert document["requests"]["degraded"] == {"llm=stale_cache": 3}
    assert document["requests"]["p50_seconds"] is not None
    assert SECRET not in response.text


async def test_the_page_and_its_data_are_the_apps_to_gate(clock: FakeClock) -> None:
    denied = app_with_status(clock, details=False)
    checked = app_with_status(clock, details=lambda r: r.headers.get("x-ops") == "yes")
    async with client(denied) as http:
        for path in ("/status", "/status/snapshot", "/status/events"):
            response = await http.get(path)
            assert response.status_code == 403, path
            assert "llm" not in response.text
    async with client(checked) as http:
        assert (await http.get("/status/snapshot")).status_code == 403
        assert (await http.get("/status/snapshot", headers={"x-ops": "yes"})).status_code == 200
        page = await http.get("/status", headers={"x-ops": "yes"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'new EventSource("/status/events")' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline


async def test_no_snapshot_is_built_without_a_watcher_and_one_per_interval_with_many(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = 0
    document = _Snapshots.document

    def counting(self: _Snapshots) -> dict[str, Any]:
        nonlocal built
        built += 1
        return document(self)

    monkeypatch.setattr(_Snapshots, "document", counting)
    app = app_with_status(clock, dependencies=20)
    async with client(app) as http:
        for _ in range(50):
            await http.get("/chat")
        assert built == 0  # traffic alone builds nothing
        first = (await http.get("/status/snapshot")).json()
        for _ in range(5):  # five watchers within one interval share one document
            assert (await http.get("/status/snapshot")).json() == first
        assert built == 1
        await clock.advance(1.0)
        await http.get("/status/snapshot")
    assert built == 2
    assert len(first["dependencies"]) == 20


async def test_request_stats_quantiles_and_window(clock: FakeClock) -> None:
    stats = RequestStats(clock, bucket_seconds=10, buckets=3)
    for i in range(100):
        stats.record(0.010 if i < 98 else 2.0, None)
    summary = stats.summary()
    assert summary["requests"] == 100 and summary["window_seconds"] == 30
    assert summary["p50_seconds"] == pytest.approx(0.010, rel=0.25)
    assert summary["p99_seconds"] == pytest.approx(2.0, rel=0.25)
    await clock.advance(31)  # everything aged out of the window
    assert stats.summary()["requests"] == 0 and stats.summary()["p50_seconds"] is None


def test_request_stats_keep_a_bounded_number_of_flags(clock: FakeClock) -> None:
    stats = RequestStats(clock)
    for i in range(500):
        degradation = Degradation()
        degradation.mark(f"dep{i}", "unavailable")
        stats.record(0.01, degradation)
    degraded = stats.summary()["degraded"]
    assert len(degraded) == 65 and degraded["other"] == 500 - 64


def test_bad_options_name_the_field(clock: FakeClock) -> None:
    resilience = Resilience(clock=clock)
    with pytest.raises(InvalidOptionsError, match=r"status_router\.path"):
        status_router(resilience.registry, RequestStats(clock), clock=clock, path="status/")
    with pytest.raises(InvalidOptionsError, match=r"RequestStats\.buckets"):
        RequestStats(clock, buckets=0)
    with pytest.raises(InvalidOptionsError, match=r"status_router\.interval"):
        status_router(resilience.registry, RequestStats(clock), clock=clock, interval=-1)


def test_snapshot_is_json_with_an_interval(clock: FakeClock) -> None:
    resilience = Resilience(clock=clock, dependencies=[Dependency("db", "critical")])
    snapshots = _Snapshots(resilience.registry, RequestStats(clock), clock, 1.0, None)
    document = json.loads(snapshots.encoded())
    assert document["interval"] == 1.0 and "demo" not in document
    assert document["dependencies"][0]["breaker"] is None
