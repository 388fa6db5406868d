"""Background health checks on the fake clock: detection, timeout, recovery, no leaks."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from netra_resilience import PipelineBuilder
from netra_resilience.health import Dependency, HealthStatus, ServiceRegistry, health_document
from netra_resilience.telemetry import LoggingListener
from netra_resilience.testing import FakeClock, RecordingListener
from tests.unit.health._fakes import FakeBreaker, Switch

FAKE_KEY = "sk-proj-FAKE0123456789abcdefSECRET"


def registry_with(
    clock: FakeClock,
    *,
    criticality: str = "critical",
    listener: RecordingListener | None = None,
    **kwargs: object,
) -> tuple[ServiceRegistry, Switch, FakeBreaker]:
    switch, breaker = Switch(), FakeBreaker()
    pipeline = PipelineBuilder("db").add_strategy(breaker).build()
    dependency = Dependency("db", criticality, check=switch, pipeline=pipeline, **kwargs)  # type: ignore[arg-type]
    registry = ServiceRegistry(
        [dependency], probe_interval=10, check_timeout=2, clock=clock, telemetry=listener
    )
    return registry, switch, breaker


async def test_not_checked_yet_is_warn(clock: FakeClock) -> None:
    registry, switch, _ = registry_with(clock)
    component = registry.monitor.report().component("db")
    assert component is not None and component.status is HealthStatus.WARN
    assert component.output == "not checked yet"
    assert switch.calls == 0


async def test_start_checks_once_then_every_interval(clock: FakeClock) -> None:
    registry, switch, _ = registry_with(clock)
    monitor = registry.monitor
    await monitor.start()
    try:
        assert switch.calls == 1 and monitor.running
        assert monitor.report().status is HealthStatus.PASS
        await clock.advance(9.9)
        assert switch.calls == 1
        await clock.advance(0.1)
        assert switch.calls == 2
        await clock.advance(30)
        assert switch.calls == 5
        assert clock.sleeps[-1] == 10.0  # fixed rate
        await monitor.start()  # idempotent
        assert switch.calls == 5
    finally:
        await monitor.stop()
    assert not registry.monitor.running
    await clock.advance(100)
    assert switch.calls == 5  # stopped: no more checks
    assert clock.pending == 0


async def test_failure_detected_within_one_interval_and_recovery_is_automatic(
    clock: FakeClock,
) -> None:
    registry, switch, breaker = registry_with(clock)
    monitor = registry.monitor
    await monitor.start()
    try:
        await clock.advance(3)
        switch.mode = "raise"  # the dependency goes down between two checks
        await clock.advance(7)  # one interval after the last check
        report = monitor.report()
        assert report.status is HealthStatus.FAIL and not report.ready()
        assert breaker.state == "isolated" and breaker.calls == ["isolate"]
        assert report.retry_after == 10.0  # isolated breaker: the next check
        await clock.advance(10)
        assert breaker.calls == ["isolate"]  # no re-isolation while it stays down
        switch.mode = "ok"
        await clock.advance(10)  # recovery seen by the next check
        report = monitor.report()
        assert report.status is HealthStatus.PASS and report.ready()
        assert breaker.state == "closed" and breaker.calls == ["isolate", "close"]
    finally:
        await monitor.stop()


async def test_check_timeout(clock: FakeClock) -> None:
    registry, switch, breaker = registry_with(clock, isolate_on_failure=False)
    monitor = registry.monitor
    await monitor.start()
    try:
        switch.mode = "hang"
        await clock.advance(10)  # the check starts and hangs
        assert monitor.report().status is HealthStatus.PASS  # still the cached result
        await clock.advance(1.9)
        assert monitor.report().status is HealthStatus.PASS
        await clock.advance(0.1)  # check_timeout = 2 s
        result = monitor.result("db")
        assert result is not None and result.error_type == "timeout"
        assert result.duration == pytest.approx(2.0)
        component = monitor.report().component("db")
        assert component is not None
        assert component.status is HealthStatus.FAIL and component.output == "check timed out"
        assert component.observed_ms == pytest.approx(2000.0)
        assert breaker.calls == []  # isolate_on_failure=False
        assert 2.0 in clock.timeouts
    finally:
        await monitor.stop()


async def test_failure_threshold(clock: FakeClock) -> None:
    registry, switch, breaker = registry_with(clock, failure_threshold=3)
    monitor = registry.monitor
    switch.mode = "raise"
    statuses = []
    for _ in range(3):
        await monitor.probe("db")
        component = monitor.report().component("db")
        assert component is not None
        statuses.append(component.status)
    assert statuses == [HealthStatus.WARN, HealthStatus.WARN, HealthStatus.FAIL]
    assert breaker.calls == ["isolate"]
    switch.mode = "ok"
    await monitor.probe("db")
    assert monitor.result("db") is not None
    assert monitor.result("db").consecutive_failures == 0  # type: ignore[union-attr]


async def test_monitor_never_closes_a_breaker_it_did_not_isolate(clock: FakeClock) -> None:
    registry, _switch, breaker = registry_with(clock)
    breaker.state = "isolated"  # an operator took it out of service
    await registry.monitor.probe("db")
    assert breaker.state == "isolated" and breaker.calls == []
    breaker.state = "open"  # opened by real traffic: left to its own half-open probe
    await registry.monitor.probe("db")
    assert breaker.state == "open" and breaker.calls == []


async def test_operator_closing_while_down(clock: FakeClock) -> None:
    registry, switch, breaker = registry_with(clock)
    switch.mode = "raise"
    await registry.monitor.probe("db")
    await breaker.close()  # an operator closes it by hand while the check still fails
    await registry.monitor.probe("db")
    assert breaker.calls == ["isolate", "close", "isolate"]  # isolated again
    switch.mode = "ok"
    await registry.monitor.probe("db")
    assert breaker.state == "closed" and breaker.calls[-1] == "close"


async def test_breaker_errors_do_not_stop_probing(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    registry, switch, breaker = registry_with(clock)

    async def broken() -> None:
        raise RuntimeError(f"boom {FAKE_KEY}")

    breaker.isolate = broken  # type: ignore[method-assign]
    switch.mode = "raise"
    with caplog.at_level(logging.WARNING, "netra_resilience.health"):
        result = await registry.monitor.probe("db")
    assert result is not None and result.status is HealthStatus.FAIL
    assert "RuntimeError" in caplog.text and FAKE_KEY not in caplog.text


async def test_check_that_cancels_itself_is_a_failure(clock: FakeClock) -> None:
    registry, switch, _ = registry_with(clock, isolate_on_failure=False)
    switch.error = asyncio.CancelledError()  # type: ignore[assignment]
    switch.mode = "raise"
    result = await registry.monitor.probe("db")
    assert result is not None and result.error_type == "CancelledError"


async def test_check_may_report_warn_or_false(clock: FakeClock) -> None:
    registry, switch, breaker = registry_with(clock)
    switch.value = HealthStatus.WARN
    await registry.monitor.probe("db")
    component = registry.monitor.report().component("db")
    assert component is not None
    assert component.status is HealthStatus.WARN and component.output == "check reported warn"
    assert breaker.calls == []
    switch.value = False
    await registry.monitor.probe("db")
    assert registry.monitor.report().status is HealthStatus.FAIL
    switch.value = "some string the check returned"  # ignored: a pass, never shown
    await registry.monitor.probe("db")
    assert "some string" not in json.dumps(health_document(registry.monitor.report()))


async def test_probe_of_dependency_without_check(clock: FakeClock) -> None:
    registry = ServiceRegistry([Dependency("llm", "important")], clock=clock)
    assert await registry.monitor.probe("llm") is None
    await registry.monitor.start()  # nothing to probe: no tasks
    await registry.monitor.stop()


async def test_draining_fails_readiness(clock: FakeClock) -> None:
    registry, _, _ = registry_with(clock)
    monitor = registry.monitor
    await monitor.start()
    assert monitor.report().ready()
    await monitor.stop()
    report = monitor.report()
    assert report.draining and not report.ready()
    assert "draining: shutting down" in health_document(report)["notes"]
    await monitor.start()
    assert monitor.report().ready()
    await monitor.stop()


async def test_secrets_never_reach_health_output_or_logs(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    listener = RecordingListener()
    registry, switch, breaker = registry_with(clock, listener=listener)
    switch.error = PermissionError(f"401 Unauthorized: invalid api key {FAKE_KEY}")
    switch.mode = "raise"
    breaker.last_failure_type = f"AuthenticationError: {FAKE_KEY}"  # even a misbehaving breaker
    logs = LoggingListener(logging.getLogger("test.netra"))
    with caplog.at_level(logging.DEBUG):
        await registry.monitor.probe("db")
        for event in listener.events:
            logs.on_event(event)
    document = health_document(registry.monitor.report())
    text = json.dumps(document)
    assert FAKE_KEY not in text and "Unauthorized" not in text
    assert "check failed: PermissionError" in text
    assert FAKE_KEY not in caplog.text
    assert FAKE_KEY not in repr([e.args for e in listener.events])


async def test_status_changes_are_reported_to_telemetry(clock: FakeClock) -> None:
    listener = RecordingListener()
    registry, switch, _ = registry_with(clock, listener=listener, criticality="important")
    await registry.monitor.probe("db")
    await registry.monitor.probe("db")  # unchanged: no event
    switch.mode = "raise"
    await registry.monitor.probe("db")
    switch.mode = "ok"
    await registry.monitor.probe("db")
    assert listener.names() == [
        "health_check_status_changed",
        "health_check_status_changed",
        "health_check_isolated_breaker",
        "health_check_status_changed",
        "health_check_closed_breaker",
    ]
    changed = listener.named("health_check_status_changed")
    assert [(e.args["previous_state"], e.args["state"]) for e in changed] == [
        (None, "pass"),
        ("pass", "fail"),
        ("fail", "pass"),
    ]
    assert changed[1].args["criticality"] == "important"
    assert changed[1].args["error_type"] == "ConnectionError"
    assert changed[1].source.pipeline == "db" and changed[1].source.strategy == "health"


async def test_add_after_start_is_refused(clock: FakeClock) -> None:
    registry, _, _ = registry_with(clock)
    await registry.monitor.start()
    try:
        with pytest.raises(RuntimeError):
            registry.add(Dependency("late", "optional"))
    finally:
        await registry.monitor.stop()
