"""The drill: thresholds judged from samples, and a small real run against the example app."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from netra_resilience.drill import DRILL_PACKAGES, main
from netra_resilience.drill._report import scorecard_rows, write_html
from netra_resilience.drill._scenarios import (
    SCENARIOS,
    Sample,
    ScenarioResult,
    percentile,
    select,
)

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


def test_the_nine_origin_scenarios_plus_three_llm_faults() -> None:
    assert len(SCENARIOS) == 12
    assert len({s.name for s in SCENARIOS}) == 12
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


def test_scorecard_and_html_report(tmp_path: Path) -> None:
    r = result([sample(), sample("degraded", degraded={"llm": "timeout"}, latency=0.5)])
    row = scorecard_rows([r])[0]
    assert row[:5] == ["s", "2", "1", "1", "0"]
    assert row[-1] == "PASS"
    path = write_html([r], tmp_path / "report.html", target="test")
    text = path.read_text()
    assert "netra-resilience drill: PASS" in text
    assert "plotly" in text.lower() and "<script" in text  # the chart, its JS inline


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
        "netra-resilience drill needs the 'httpx' package: "
        'pip install "netra-resilience[drill]"'
    )
    in_process = run_cli("drill", blocked=("uvicorn",))
    assert in_process.returncode == 2
    assert 'needs the \'uvicorn\' package: pip install "netra-resilience[demo]"' in (
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
