"""The shipped alert rules and Grafana dashboard against the series the library really exports:
promtool checks and unit-tests the rules (negative cases included), every query names a
series a real scrape contains, every panel has a unit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netra_resilience import (
    CircuitBreakerOptions,
    DegradationReason,
    Dependency,
    FallbackOptions,
    Hook,
    InvalidOptionsError,
    Resilience,
    ResilienceContext,
    RunRequest,
    use_context,
)
from netra_resilience.integrations.prometheus import PrometheusListener, asset_path
from netra_resilience.llm import BUDGET_EXHAUSTED
from netra_resilience.testing import FakeClock, advance_until_done

SERIES = re.compile(r"\bnetra_[a-z_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/test installs Debian's prometheus package")
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return found


async def scraped_series(clock: FakeClock) -> set[str]:
    """Every sample name of a scrape after the library did what each series counts."""
    collectors = CollectorRegistry()
    prom = PrometheusListener(registry=collectors)
    resilience = Resilience(clock=clock, telemetry=prom)
    prom.observe(resilience.registry)

    async def stale(_: Any) -> str:
        return "last good answer"

    llm = resilience.add(
        Dependency(
            "llm",
            "important",
            strategies=[
                prom.timing(),
                FallbackOptions(action=stale, reason=DegradationReason.STALE_CACHE),
                CircuitBreakerOptions(minimum_throughput=2, failure_ratio=0.5),
            ],
        )
    )

    async def cheaper(_: Any) -> str:
        return "a cheaper model's answer"

    priced = resilience.add(
        Dependency(
            "priced",
            "important",
            strategies=[prom.timing(), FallbackOptions(action=cheaper, reason=BUDGET_EXHAUSTED)],
        )
    )
    resilience.add(Dependency("database", "critical"))
    resilience.add(Dependency("monitoring", "monitoring"))

    async def down() -> str:
        raise ConnectionError("down")

    for _ in range(3):
        assert await llm.execute(down) == "last good answer"
    assert await priced.execute(down) == "a cheaper model's answer"

    async def hook(_: Any) -> None:
        await clock.sleep(1)

    async def agent(request: RunRequest, events: Any) -> str:
        return "ok"

    engine = resilience.engine(agent, hooks=[Hook("analytics", hook)], hook_queue_size=1)
    prom.observe_engine(engine)
    for _ in range(3):  # the slow hook holds its queue: later events are dropped
        await advance_until_done(clock, engine.run(RunRequest("hi")))
    text = generate_latest(collectors).decode()
    await advance_until_done(clock, resilience.aclose())
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


async def test_degraded_answers_dependency_info_and_hook_drops_are_exported(
    clock: FakeClock,
) -> None:
    names = await scraped_series(clock)
    for name in (
        "netra_degraded_answers_total",
        "netra_budget_exhausted_total",
        "netra_dependency_info",
        "netra_hook_jobs_dropped_total",
        "netra_hook_queue_jobs",
        "netra_circuit_breaker_state",
        "netra_health_status",
        "netra_dependency_operation_duration_seconds_bucket",
    ):
        assert name in names


async def test_the_degraded_answer_counter_counts_reason_and_dependency(clock: FakeClock) -> None:
    collectors = CollectorRegistry()
    prom = PrometheusListener(registry=collectors)
    resilience = Resilience(clock=clock, telemetry=prom)

    async def canned(_: Any) -> str:
        return "canned"

    fallback = FallbackOptions(action=canned, reason=DegradationReason.CANNED_REPLY)
    llm = resilience.add(Dependency("llm", "important", strategies=[prom.timing(), fallback]))

    async def down() -> str:
        raise ConnectionError("down")

    async def up() -> str:
        return "fresh"

    await llm.execute(down)
    await llm.execute(down)
    await llm.execute(up)
    value = collectors.get_sample_value(
        "netra_degraded_answers_total", {"dependency": "llm", "reason": "canned_reply"}
    )
    assert value == 2.0
    calls = collectors.get_sample_value(
        "netra_dependency_operation_duration_seconds_count", {"dependency": "llm", "error_type": ""}
    )
    assert calls == 3.0


async def test_every_series_the_rules_and_the_dashboard_name_is_exported(
    clock: FakeClock,
) -> None:
    exported = await scraped_series(clock)
    rules = asset_path("prometheus_alerts.yml").read_text()
    dashboard = json.loads(asset_path("grafana_dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    queries += re.findall(r"expr:(.*?)\n\s+(?:for|labels):", rules, re.S)  # rule expressions
    assert len(queries) == 11 + 2 + 7  # panel targets, template queries, alert rules
    named = {n for q in queries for n in SERIES.findall(q)}
    assert named  # the files do name series
    assert named <= exported, f"not exported: {sorted(named - exported)}"


def test_every_dashboard_panel_has_a_unit_a_description_and_a_query() -> None:
    dashboard = json.loads(asset_path("grafana_dashboard.json").read_text())
    assert dashboard["uid"] == "netra-resilience"
    for panel in dashboard["panels"]:
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles))


def test_promtool_checks_and_unit_tests_the_alert_rules(tmp_path: Path) -> None:
    tool = promtool()
    for name in ("prometheus_alerts.yml", "prometheus_alerts_test.yml"):
        shutil.copy(asset_path(name), tmp_path / name)  # as a user copies them
    check = subprocess.run(
        [tool, "check", "rules", "prometheus_alerts.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    test = subprocess.run(
        [tool, "test", "rules", "prometheus_alerts_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr


def test_the_rule_tests_catch_a_rule_that_pages_for_monitoring(tmp_path: Path) -> None:
    """The negative cases bite: widen the breaker rule to every criticality and it fails."""
    tool = promtool()
    rules = asset_path("prometheus_alerts.yml").read_text()
    widened = rules.replace('criticality=~"critical|important|optional"', 'criticality=~".+"')
    assert widened != rules
    (tmp_path / "prometheus_alerts.yml").write_text(widened)
    shutil.copy(asset_path("prometheus_alerts_test.yml"), tmp_path / "prometheus_alerts_test.yml")
    test = subprocess.run(
        [tool, "test", "rules", "prometheus_alerts_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert test.returncode != 0
    assert 'dependency="monitoring"' in test.stdout + test.stderr


async def test_instrument_times_the_llm_preset_and_counts_its_stale_answers(
    clock: FakeClock,
) -> None:
    collectors = CollectorRegistry()
    prom = PrometheusListener(registry=collectors)
    resilience = Resilience(clock=clock, telemetry=prom)
    llm = prom.instrument(resilience.llm(cache=True, retry=None, total_timeout=None))
    answers = iter(["fresh answer"])

    async def ask(question: str) -> str:
        try:
            return next(answers)
        except StopIteration:
            raise ConnectionError("provider down") from None

    with use_context(ResilienceContext("chat", user_id="u1")):
        assert await llm.execute(ask, "q") == "fresh answer"
        assert await advance_until_done(clock, llm.execute(ask, "q")) == "fresh answer"
    stale = collectors.get_sample_value(
        "netra_degraded_answers_total", {"dependency": "llm", "reason": "stale_cache"}
    )
    assert stale == 1.0
    with pytest.raises(InvalidOptionsError, match="already timed"):
        prom.instrument(llm)
