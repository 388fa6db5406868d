"""State-change delivery: order, no re-entrancy, errors swallowed, decided when built."""

from __future__ import annotations

from collections.abc import Callable

from netra_resilience.circuit_breaker import CircuitState, CircuitStateChange
from netra_resilience.telemetry import TelemetryEvent
from netra_resilience.testing import FakeClock
from tests.unit.circuit_breaker.helpers import build, call, fail


async def test_telemetry_then_callback_then_listeners_in_order(clock: FakeClock) -> None:
    log: list[str] = []

    class Telemetry:
        def on_event(self, event: TelemetryEvent) -> None:
            if event.name != "circuit_rejected":
                log.append(f"telemetry {event.name}")

    def callback(kind: str) -> Callable[[CircuitStateChange], None]:
        return lambda change: log.append(f"{kind} {change.new_state}")

    pipeline, breaker = build(
        clock,
        Telemetry(),
        minimum_throughput=2,
        on_opened=callback("on_opened"),
        on_half_opened=callback("on_half_opened"),
        on_closed=callback("on_closed"),
    )
    breaker.add_state_listener(lambda old, new, change: log.append(f"first {old}->{new}"))
    breaker.add_state_listener(lambda old, new, change: log.append(f"second {old}->{new}"))
    await fail(pipeline, 2)
    await clock.advance(15)
    await call(pipeline)
    assert log == [
        "telemetry circuit_opened",
        "on_opened open",
        "first closed->open",
        "second closed->open",
        "telemetry circuit_half_opened",
        "on_half_opened half_open",
        "first open->half_open",
        "second open->half_open",
        "telemetry circuit_closed",
        "on_closed closed",
        "first half_open->closed",
        "second half_open->closed",
    ]


async def test_change_raised_inside_a_callback_is_delivered_after_it(clock: FakeClock) -> None:
    log: list[str] = []
    pipeline, breaker = build(
        clock, minimum_throughput=2, break_duration_generator=lambda args: 0.0
    )

    def on_change(old: CircuitState, new: CircuitState, change: CircuitStateChange) -> None:
        log.append(f"start {new}")
        if new is CircuitState.OPEN:
            assert breaker.state is CircuitState.HALF_OPEN  # zero break: half-opens on read
        log.append(f"end {new}")

    breaker.add_state_listener(on_change)
    await fail(pipeline, 2)
    assert log == ["start open", "end open", "start half_open", "end half_open"]


async def test_failing_listeners_and_callbacks_are_swallowed(clock: FakeClock) -> None:
    seen: list[CircuitState] = []

    def broken(*args: object) -> None:
        raise RuntimeError("listener bug")

    pipeline, breaker = build(clock, minimum_throughput=2, on_opened=broken)
    breaker.add_state_listener(broken)
    breaker.add_state_listener(lambda old, new, change: seen.append(new))
    await fail(pipeline, 2)
    assert breaker.state is CircuitState.OPEN
    assert seen == [CircuitState.OPEN]


async def test_listener_can_unsubscribe(clock: FakeClock) -> None:
    seen: list[CircuitState] = []
    pipeline, breaker = build(clock, minimum_throughput=2)
    remove = breaker.add_state_listener(lambda old, new, change: seen.append(new))
    remove()
    remove()  # idempotent
    await fail(pipeline, 2)
    assert seen == []


async def test_nobody_listening_builds_no_change_objects(clock: FakeClock) -> None:
    pipeline, breaker = build(clock, minimum_throughput=2)
    assert breaker._events.active is False
    await fail(pipeline, 2)
    assert breaker.state is CircuitState.OPEN
    breaker.add_state_listener(lambda *args: None)
    assert breaker._events.active is True
