"""Criticality that follows the request path: a standby (fallback store) matters only while
its primary fails; a shared dependency's outage fails /health but never readiness."""

from __future__ import annotations

import pytest

from netra_resilience import InvalidOptionsError
from netra_resilience.health import Criticality, Dependency, HealthStatus, ServiceRegistry
from netra_resilience.testing import FakeClock
from tests.unit.health._fakes import Switch


def failing(switch: Switch, down: bool) -> Switch:
    switch.mode = "raise" if down else "ok"
    return switch


@pytest.mark.parametrize(
    ("primary_down", "standby_down", "status", "criticality", "ready"),
    [
        (False, False, HealthStatus.PASS, "important", True),
        (False, True, HealthStatus.WARN, "important", True),  # nobody waits on it now
        (True, False, HealthStatus.WARN, "critical", True),  # the standby serves
        (True, True, HealthStatus.FAIL, "critical", False),  # the path needs it, and it is down
    ],
)
async def test_a_standby_is_critical_only_while_its_primary_fails(
    clock: FakeClock,
    primary_down: bool,
    standby_down: bool,
    status: HealthStatus,
    criticality: str,
    ready: bool,
) -> None:
    redis, database = failing(Switch(), primary_down), failing(Switch(), standby_down)
    registry = ServiceRegistry(
        [
            Dependency("redis", "optional", check=redis),
            Dependency("database", "critical", check=database, standby_for="redis"),
        ],
        clock=clock,
    )
    await registry.monitor.probe_all()
    report = registry.monitor.report()
    component = report.component("database")
    assert component is not None
    assert report.status is status
    assert component.criticality.value == criticality
    assert report.ready() is ready
    if standby_down and not primary_down:
        assert component.output is not None and "standby for redis" in component.output


async def test_a_shared_critical_outage_fails_health_but_not_readiness(clock: FakeClock) -> None:
    shared, local = Switch(), Switch()
    registry = ServiceRegistry(
        [
            Dependency("postgres", "critical", check=shared, shared=True),
            Dependency("disk", "critical", check=local),
        ],
        clock=clock,
    )
    shared.mode = "raise"
    await registry.monitor.probe_all()
    report = registry.monitor.report()
    assert report.status is HealthStatus.FAIL  # /health: 503, alerts fire
    assert report.ready()  # every replica shares it: pulling them all helps no one
    local.mode = "raise"  # this replica's own problem: take it out of rotation
    await registry.monitor.probe_all()
    assert not registry.monitor.report().ready()
    registry.monitor.draining = True
    local.mode = shared.mode = "ok"
    await registry.monitor.probe_all()
    assert not registry.monitor.report().ready()  # draining still wins


def test_standby_for_is_checked_at_registration() -> None:
    with pytest.raises(InvalidOptionsError, match="standby_for"):
        Dependency("db", Criticality.CRITICAL, standby_for="db")
    with pytest.raises(InvalidOptionsError, match="declare the primary first"):
        ServiceRegistry([Dependency("db", "critical", standby_for="redis")])
    with pytest.raises(InvalidOptionsError, match="shared"):
        Dependency("db", "critical", shared="yes")  # type: ignore[arg-type]
