"""The drill: thresholds judged from samples, and a small real run against the example app."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from netra_resilience.drill import DRILL_PACKAGES, main
from netra_resilience.drill._report import COLUMNS, MAX_POINTS, scorecard_rows, write_html
from netra_resilience.drill._runner import DrillOptions
from netra_resilience.drill._scenarios import (
    SCENARIOS,
    HealthPoint,
    Sample,
    ScenarioResult,
    percentile,
    select,
)
from tests.servers import free_port, serving_in_thread

ROOT = Path(__file__).resolve().parents[3]


def sample(outcome: str = "answered", **changes: object) -> Sample:
    values: dict[str, object] = {
        "at": 1.0,
        "latency": 0.01,
        "outcome": outcome,
        "phase": "fault",
        "degraded": {},
        "events": 4,
        "expected_events": 4,
        "completed": True,
        "leaked": 0,
        "channel": "http",
    }
    values.update(changes)
    return Sample(**values)  # type: ignore[arg-type]


def result(samples: list[Sample], *, detect: float | None = 0.5) -> ScenarioResult:
    r = ScenarioResult("s", "S", started=0.0, fault_at=1.0, cleared_at=2.0, ended=3.0)
    r.samples = samples
    r.detect_seconds = detect
    r.recover_seconds = 1.0
    return r


def test_the_nine_origin_scenarios_plus_three_llm_faults_and_a_lost_tool_answer() -> None:
    assert len(SCENARIOS) == 13
    assert len({s.name for s in SCENARIOS}) == 13
    assert [s.name for s in select(["llm_malformed", "redis_unavailable"])] == [
        "redis_unavailable",
        "llm_malformed",
    ]
    with pytest.raises(ValueError, match="unknown scenario"):
        select(["nope"])


def test_thresholds() -> None:
    good = [sample() for _ in range(99)] + [sample("degraded", degraded={"llm": "stale_cache"})]
    assert result(good).passed
    one_failed = [sample() for _ in range(98)] + [sample("failed")] * 2
    assert "replied" in result(one_failed).violations()[0]
    assert not result([*good, sample(completed=False)]).passed
    assert "secret" in result([*good, sample(leaked=1)]).violations()[0]
    lossy = [sample(expected_events=5) for _ in range(10)]
    assert "events delivered" in result(lossy).violations()[0]
    assert "never detected" in result(good, detect=None).violations()[0]
    assert "> 5 s" in result(good, detect=6.0).violations()[0]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([], 99) is None


def test_scorecard_shows_replied_share_and_degradations_by_reason() -> None:
    r = result(
        [
            sample(),
            sample("degraded", degraded={"llm": "stale_cache"}),
            sample("degraded", degraded={"llm": "stale_cache", "tool": "skipped"}),
            sample("failed"),
        ]
    )
    (row,) = scorecard_rows([r])
    cells = dict(zip(COLUMNS, row, strict=True))
    assert cells["replied %"] == "75.0"  # the threshold's own figure, not "clean"
    assert (cells["clean"], cells["degraded"], cells["failed"]) == ("1", "2", "1")
    assert cells["degraded by reason"] == "llm=stale_cache 2, tool=skipped 1"
    assert cells["verdict"] == "FAIL"


def test_html_report_is_self_describing_offline_and_small(tmp_path: Path) -> None:
    samples = [
        sample(
            "degraded" if i % 3 else "answered",
            at=i / 1000,
            latency=0.001 + (i % 97) / 100,
            degraded={"llm": "stale_cache"} if i % 3 else {},
        )
        for i in range(60_000)
    ]
    first, second = result(samples[:30_000]), result(samples[30_000:])
    second.name = "llm_timeout"
    second.health = [
        HealthPoint(31.0, "warn", {"llm": "open"}),
        HealthPoint(33.0, "pass", {"llm": "closed"}),
    ]
    started = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    path = write_html(
        [first, second],
        tmp_path / "report.html",
        target="http://127.0.0.1:8000",
        options=DrillOptions(users=7, fault_seconds=2.5),
        version="0.2.0",
        started=started,
    )
    text = path.read_text()
    assert "2026-12-07 09:30:00 UTC" in text and "netra-resilience 0.2.0" in text
    assert "7 concurrent users" in text and "faults held 2.5 s" in text
    assert "replied &gt;= 99%" in text and "detected &lt; 5 s" in text  # thresholds
    assert "<dt>replied %</dt>" in text  # the legend
    assert "<svg" in text and "<script" not in text  # drawn inline, nothing to run
    assert "src=" not in text and "href=" not in text and "@import" not in text  # offline
    assert text.count("<circle") == MAX_POINTS  # 60k samples thinned to the budget
    assert path.stat().st_size <= 2_000_000


def test_small_drill_in_process_passes(tmp_path: Path) -> None:
    report = tmp_path / "drill.html"
    code = main(
        [
            "drill",
            "--users",
            "3",
            "--fault-seconds",
            "0.5",
            "--scenario",
            "connection_churn",
            "--scenario",
            "service_discovery_failure",
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert code == 0
    assert "service_discovery_failure" in report.read_text()


def run_cli(*args: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """The console script's entry point in a fresh interpreter, ``blocked`` made unimportable."""
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from netra_resilience.drill import entry_point\n"
        f"sys.argv = ['netra-resilience', *{args!r}]\n"
        "entry_point()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_without_its_packages_the_drill_says_which_extra_to_install() -> None:
    help_text = run_cli("drill", "--help", blocked=("httpx", "rich"))
    assert help_text.returncode == 0, help_text.stderr
    assert "--target URL" in help_text.stdout
    assert "netra-resilience[drill]" in help_text.stdout

    target = run_cli("drill", "--target", "http://127.0.0.1:9", blocked=("httpx",))
    assert target.returncode == 2
    assert target.stderr.strip() == (
        "netra-resilience drill needs the 'httpx' package: pip install \"netra-resilience[drill]\""
    )
    in_process = run_cli("drill", blocked=("uvicorn",))
    assert in_process.returncode == 2
    assert "needs the 'uvicorn' package: pip install \"netra-resilience[demo]\"" in (
        in_process.stderr
    )
    assert "Traceback" not in target.stderr + in_process.stderr


def test_the_drill_extra_is_what_the_command_checks_for() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = sorted(req.split(">")[0].split("=")[0].split("[")[0] for req in extras["drill"])
    assert names == sorted(DRILL_PACKAGES)
    assert any(req.startswith("netra-resilience[drill") for req in extras["demo"])


def plain_app(*, faults: list[str] | None = None) -> FastAPI:
    """An app that is not the example backend: /health, optionally fault switches, a chat
    route answering 404 (the shape a user's own app often has before it is made drillable)."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "pass", "checks": {}}

    if faults is not None:

        @app.get("/demo/faults")
        async def listing() -> dict[str, Any]:
            return {"dependencies": faults, "active": {}}

    return app


def drill_target(url: str, *scenarios: str, users: int = 2) -> tuple[int, str]:
    err = io.StringIO()
    args = ["drill", "--target", url, "--quiet", "--report", "-", "--users", str(users)]
    for name in scenarios:
        args += ["--scenario", name]
    with redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def test_a_target_without_fault_switches_fails_fast_saying_so() -> None:
    with serving_in_thread(plain_app()) as url:
        code, err = drill_target(url, "connection_churn")
    assert code == 2
    assert f"GET {url}/demo/faults answered 404" in err and "NETRA_DEMO=1" in err
    assert "Traceback" not in err


def test_a_target_missing_a_scenarios_switch_is_named() -> None:
    with serving_in_thread(plain_app(faults=["llm"])) as url:
        code, err = drill_target(url, "llm_timeout", "redis_unavailable")
    assert code == 2
    assert "no fault switch for redis" in err


def test_a_target_without_the_chat_route_is_named() -> None:
    with serving_in_thread(plain_app(faults=["llm", "redis"])) as url:
        code, err = drill_target(url, "redis_unavailable")
    assert code == 2
    assert f"POST {url}/v1/chat answered 404" in err


def test_nothing_listening_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, err = drill_target(url, "connection_churn")
    assert code == 2
    assert f"{url}/health did not answer (ConnectError)" in err


def test_help_documents_what_a_target_must_expose() -> None:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main(["drill", "--help"])
    assert "GET  /demo/faults" in out.getvalue() and "WS   /v1/chat/ws" in out.getvalue()


def test_a_target_without_the_websocket_route_is_named() -> None:
    app = plain_app(faults=["redis"])

    @app.post("/v1/chat")
    async def chat() -> dict[str, Any]:
        return {"answer": "hi", "status": "ok", "events": [], "degraded": {}}

    with serving_in_thread(app) as url:
        code, err = drill_target(url, "redis_unavailable", users=4)  # one of them on the WS
    assert code == 2
    assert "/v1/chat/ws refused the connection (HTTP 403)" in err
