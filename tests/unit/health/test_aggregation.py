"""Every criticality x state combination: component status, aggregate, HTTP code, readiness."""

from __future__ import annotations

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder
from netra_resilience.health import (
    DEFAULT_STATUS_CODES,
    Criticality,
    Dependency,
    HealthStatus,
    ServiceRegistry,
    health_document,
    status_codes,
)
from netra_resilience.testing import FakeClock
from tests.unit.health._fakes import FakeBreaker, Switch

PASS, WARN, FAIL = HealthStatus.PASS, HealthStatus.WARN, HealthStatus.FAIL

# state -> the component's own status
STATES = {
    "breaker_closed": PASS,
    "breaker_half_open": WARN,
    "breaker_open": FAIL,
    "breaker_isolated": FAIL,
    "check_pass": PASS,
    "check_warn": WARN,
    "check_fail": FAIL,
    "check_false": FAIL,
    "check_timeout": FAIL,
    "no_breaker_no_check": PASS,
}

# (criticality, component status) -> (aggregate, HTTP code, ready)
EXPECTED = {
    (Criticality.CRITICAL, PASS): (PASS, 200, True),
    (Criticality.CRITICAL, WARN): (WARN, 200, True),
    (Criticality.CRITICAL, FAIL): (FAIL, 503, False),
    (Criticality.IMPORTANT, PASS): (PASS, 200, True),
    (Criticality.IMPORTANT, WARN): (WARN, 200, True),
    (Criticality.IMPORTANT, FAIL): (WARN, 200, True),
    (Criticality.OPTIONAL, PASS): (PASS, 200, True),
    (Criticality.OPTIONAL, WARN): (WARN, 200, True),
    (Criticality.OPTIONAL, FAIL): (WARN, 200, True),
    (Criticality.MONITORING, PASS): (PASS, 200, True),
    (Criticality.MONITORING, WARN): (PASS, 200, True),
    (Criticality.MONITORING, FAIL): (PASS, 200, True),
}


async def build(state: str, criticality: Criticality, clock: FakeClock) -> ServiceRegistry:
    kwargs: dict[str, object] = {}
    if state.startswith("breaker_"):
        breaker = FakeBreaker(state.removeprefix("breaker_"), retry_after=12.0)
        kwargs["pipeline"] = PipelineBuilder("dep").add_strategy(breaker).build()
    elif state.startswith("check_"):
        switch = Switch()
        switch.mode = {"check_fail": "raise", "check_timeout": "hang"}.get(state, "ok")
        switch.value = {"check_warn": WARN, "check_false": False}.get(state)
        kwargs["check"] = switch
    registry = ServiceRegistry([Dependency("dep", criticality, **kwargs)], clock=clock)  # type: ignore[arg-type]
    if state.startswith("check_"):
        task = registry.monitor.probe("dep")
        if state == "check_timeout":
            import asyncio

            pending = asyncio.ensure_future(task)
            await clock.advance(registry.check_timeout)
            await pending
        else:
            await task
    return registry


@pytest.mark.parametrize("criticality", list(Criticality))
@pytest.mark.parametrize("state", list(STATES))
async def test_every_criticality_and_state(
    state: str, criticality: Criticality, clock: FakeClock
) -> None:
    registry = await build(state, criticality, clock)
    report = registry.monitor.report()
    component = report.component("dep")
    assert component is not None
    assert component.status is STATES[state]
    assert component.criticality is criticality
    aggregate, code, ready = EXPECTED[(criticality, STATES[state])]
    assert report.status is aggregate
    assert DEFAULT_STATUS_CODES[report.status] == code
    assert report.ready() is ready
    document = health_document(report)
    assert document["status"] == aggregate.value
    assert document["checks"]["dep"][0]["status"] == STATES[state].value
    assert document["checks"]["dep"][0]["criticality"] == criticality.value
    if state.startswith("breaker_"):
        assert document["checks"]["dep"][0]["circuitState"] == state.removeprefix("breaker_")
    if component.status is FAIL and criticality is Criticality.CRITICAL:
        assert report.retry_after == (
            12.0 if state.startswith("breaker") else registry.probe_interval
        )


async def test_mixed_dependencies(clock: FakeClock) -> None:
    breakers = {name: FakeBreaker() for name in ("db", "cache", "analytics", "metrics")}
    registry = ServiceRegistry(
        [
            Dependency(
                name, level, pipeline=PipelineBuilder(name).add_strategy(breakers[name]).build()
            )
            for name, level in (
                ("db", "critical"),
                ("cache", "important"),
                ("analytics", "optional"),
                ("metrics", "monitoring"),
            )
        ],
        clock=clock,
    )
    monitor = registry.monitor
    assert monitor.report().status is PASS
    breakers["metrics"].state = "open"
    assert monitor.report().status is PASS  # monitoring never changes the aggregate
    breakers["analytics"].state = "open"
    report = monitor.report()
    assert report.status is WARN and report.ready()
    assert report.output == "analytics: circuit open"  # monitoring is not listed either
    breakers["db"].state = "open"
    breakers["db"].last_failure_type = "ConnectTimeout"
    report = monitor.report()
    assert report.status is FAIL and not report.ready()
    assert (
        report.output == "db: circuit open (last failure: ConnectTimeout); analytics: circuit open"
    )
    assert report.ready(on=()) is True  # readiness criticalities are configurable
    breakers["db"].state = "half_open"
    assert monitor.report().status is WARN


def test_status_codes_validation() -> None:
    assert status_codes(None) == DEFAULT_STATUS_CODES
    assert status_codes({"pass": 200, "warn": 207, "FAIL": 500})[FAIL] == 500
    with pytest.raises(InvalidOptionsError, match="must map 'fail' too"):
        status_codes({"pass": 200, "warn": 200})
    with pytest.raises(InvalidOptionsError, match="'warn' must map to 200-399, got 429"):
        status_codes({"pass": 200, "warn": 429, "fail": 503})
    with pytest.raises(InvalidOptionsError, match="'fail' must map to 400-599"):
        status_codes({"pass": 200, "warn": 200, "fail": 200})
    with pytest.raises(InvalidOptionsError, match="unknown status 'down'"):
        status_codes({"pass": 200, "warn": 200, "fail": 503, "down": 503})
