"""BackendBreaker: the one breaker in front of an infrastructure backend, on a fake clock."""

# Breaker state is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="comparison-overlap, unreachable"

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience import BulkheadRejectedError, InvalidOptionsError
from netra_resilience.circuit_breaker import (
    BACKEND_UNAVAILABLE,
    BackendBreaker,
    CircuitState,
    CircuitStateChange,
)
from netra_resilience.health import (
    BreakerLike,
    Criticality,
    Dependency,
    HealthStatus,
    ServiceRegistry,
)
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock, RecordingListener

SECRET = "redis://:hunter2@cache:6379/0"


class Backend:
    """A backend whose ``ping`` and calls fail while ``down`` (a refused connection)."""

    def __init__(self) -> None:
        self.down = False
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise ConnectionRefusedError(f"refused: {SECRET}")

    async def call(self) -> str:
        if self.down:
            raise ConnectionRefusedError(f"refused: {SECRET}")
        return "ok"


@pytest.fixture
def backend() -> Backend:
    return Backend()


def make(
    backend: Backend, clock: FakeClock, listener: RecordingListener | None = None, **kw: Any
) -> BackendBreaker:
    return BackendBreaker(backend.ping, name="redis", clock=clock, telemetry=listener, **kw)


async def fail(breaker: BackendBreaker, backend: Backend, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            await breaker.call(backend.call)


async def test_one_failure_does_not_open_three_in_a_row_do(
    clock: FakeClock, backend: Backend
) -> None:
    breaker = make(backend, clock)
    backend.down = True
    await fail(breaker, backend, 2)
    assert breaker.available and breaker.allows()
    assert breaker.health.failures == 2  # the streak so far
    await fail(breaker, backend)
    assert not breaker.available and not breaker.allows()
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(1.0)
    assert breaker.last_failure_type == "ConnectionRefusedError"


async def test_a_success_ends_the_streak(clock: FakeClock, backend: Backend) -> None:
    breaker = make(backend, clock)
    for _ in range(5):
        backend.down = True
        await fail(breaker, backend, 2)
        backend.down = False
        assert await breaker.call(backend.call) == "ok"
    assert breaker.available and breaker.health.failures == 0


async def test_a_single_timeout_does_not_open_three_do(clock: FakeClock) -> None:
    hang = asyncio.Event()

    async def hung() -> None:
        await hang.wait()

    breaker = BackendBreaker(hung, name="db", timeout=0.25, clock=clock)
    for streak in (1, 2, 3):
        assert breaker.available
        call = asyncio.ensure_future(breaker.call(hung))
        await clock.advance(0.25)
        with pytest.raises(TimeoutError):
            await call
        assert breaker.health.failures == streak
    assert not breaker.available
    assert clock.timeouts == [0.25, 0.25, 0.25]


class RequestError(Exception):
    """The backend answered, refusing this request's data (e.g. a NUL byte in a key)."""


@pytest.mark.parametrize(
    "error",
    [
        RequestError("invalid byte sequence 0x00"),
        ValueError("bad key"),
        BulkheadRejectedError("bulkhead is full", dependency="db"),  # local, never reached it
    ],
    ids=["request-data", "value-error", "bulkhead-rejection"],
)
async def test_errors_that_say_nothing_about_the_backend_never_count(
    clock: FakeClock, backend: Backend, error: Exception
) -> None:
    breaker = make(backend, clock)

    async def refuse() -> None:
        raise error

    for _ in range(10):
        with pytest.raises(type(error)):
            await breaker.call(refuse)
    assert breaker.available and breaker.health.failures == 0
    # Neutral, not a success either: they do not break a real outage's streak.
    backend.down = True
    await fail(breaker, backend, 2)
    with pytest.raises(ValueError):
        await breaker.call(refuse_value)
    await fail(breaker, backend)
    assert not breaker.available


async def refuse_value() -> None:
    raise ValueError("bad key")


async def test_should_handle_names_the_clients_own_errors(clock: FakeClock) -> None:
    class ClientConnectionError(Exception):  # like redis.exceptions.ConnectionError
        pass

    async def down() -> None:
        raise ClientConnectionError("down")

    def counts(outcome: Outcome[Any]) -> bool:
        return isinstance(outcome.exception, ClientConnectionError)

    breaker = BackendBreaker(down, should_handle=counts, clock=clock)
    by_class = BackendBreaker(down, should_handle=ClientConnectionError, clock=clock)
    plain = BackendBreaker(down, clock=clock)  # the default: OSError and timeouts only
    for _ in range(3):
        for b in (breaker, by_class, plain):
            with pytest.raises(ClientConnectionError):
                await b.call(down)
    assert not breaker.available and not by_class.available and plain.available
    assert BACKEND_UNAVAILABLE(Outcome(None, ConnectionResetError()))
    assert not BACKEND_UNAVAILABLE(Outcome(None, ValueError()))


async def test_a_broken_predicate_counts_nothing(clock: FakeClock, backend: Backend) -> None:
    def broken(outcome: Outcome[Any]) -> bool:
        raise RuntimeError("bug")

    breaker = make(backend, clock, should_handle=broken)
    backend.down = True
    await fail(breaker, backend, 5)
    assert breaker.available


async def test_the_probe_runs_in_the_background_and_closes(
    clock: FakeClock, backend: Backend
) -> None:
    breaker = make(backend, clock)
    recovered: list[CircuitStateChange] = []
    breaker.add_state_listener(
        lambda old, new, change: recovered.append(change) if new is CircuitState.CLOSED else None
    )
    backend.down = True
    await fail(breaker, backend, 3)
    pings = backend.pings
    assert not breaker.allows()  # break still running: no probe
    await clock.settle()
    assert backend.pings == pings

    await clock.advance(1.0)
    assert not breaker.allows()  # the caller goes to its fallback; the probe starts
    assert breaker.probing
    await clock.settle()
    assert backend.pings == pings + 1 and not breaker.probing
    assert breaker.state is CircuitState.OPEN  # the probe failed: another break
    assert breaker.retry_after == pytest.approx(1.0)

    backend.down = False
    await clock.advance(1.0)
    for _ in range(50):  # a burst of callers starts exactly one probe
        assert not breaker.allows()
    await clock.settle()
    assert backend.pings == pings + 2
    assert breaker.available and breaker.allows()
    assert [c.reason for c in recovered] == ["probes_succeeded"]


async def test_probe_now_ends_the_break_early(clock: FakeClock, backend: Backend) -> None:
    breaker = make(backend, clock, retry_interval=30)
    backend.down = True
    await fail(breaker, backend, 3)
    assert not await breaker.probe_now()  # still down
    backend.down = False
    assert await breaker.probe_now()
    assert breaker.available
    assert await breaker.probe_now()  # closed: nothing to probe
    assert clock.monotonic() == 1000.0  # no time passed


async def test_a_cancelled_call_counts_as_nothing(clock: FakeClock) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    breaker = BackendBreaker(slow, timeout=10, failure_threshold=1, clock=clock)
    task = asyncio.ensure_future(breaker.call(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.available and breaker.health.failures == 0


async def test_a_cancelled_probe_leaves_it_open_not_wedged(clock: FakeClock) -> None:
    backend_up = asyncio.Event()

    async def probe() -> None:
        await backend_up.wait()

    async def refused() -> None:
        raise ConnectionRefusedError()

    breaker = BackendBreaker(probe, timeout=5, failure_threshold=1, clock=clock)
    with pytest.raises(ConnectionRefusedError):
        await breaker.call(refused)
    await clock.advance(1.0)
    breaker.allows()
    await clock.settle()
    assert breaker.probing and breaker.state is CircuitState.HALF_OPEN
    await breaker.aclose()  # cancels the probe
    assert not breaker.probing and breaker.state is CircuitState.OPEN
    await clock.advance(1.0)
    backend_up.set()
    breaker.allows()  # a new probe may run: the slot was given back
    await clock.settle()
    assert breaker.available


async def test_isolate_and_close_by_hand(clock: FakeClock, backend: Backend) -> None:
    breaker = make(backend, clock)
    await breaker.isolate()
    assert breaker.state is CircuitState.ISOLATED and not breaker.allows()
    await clock.advance(60)
    assert not breaker.allows() and not breaker.probing  # isolated: never probed
    assert not await breaker.probe_now()
    await breaker.close()
    assert breaker.available


async def test_state_changes_are_telemetry_like_any_breakers(
    clock: FakeClock, backend: Backend, listener: RecordingListener
) -> None:
    breaker = make(backend, clock, listener)
    backend.down = True
    await fail(breaker, backend, 3)
    backend.down = False
    await clock.advance(1.0)
    breaker.allows()
    await clock.settle()
    assert listener.names() == ["circuit_opened", "circuit_half_opened", "circuit_closed"]
    opened = listener.events[0]
    assert (opened.source.pipeline, opened.source.strategy) == ("redis", "circuit_breaker")
    assert opened.args["reason"] == "consecutive_failures"
    assert opened.args["error_type"] == "ConnectionRefusedError"
    assert SECRET not in repr([e.args for e in listener.events])


async def test_health_sees_it_as_a_dependencys_breaker(clock: FakeClock, backend: Backend) -> None:
    breaker = make(backend, clock)
    assert isinstance(breaker, BreakerLike)
    registry = ServiceRegistry(
        [Dependency("redis", Criticality.IMPORTANT, breaker=breaker)], clock=clock
    )
    assert registry.breaker("redis") is breaker
    report = registry.monitor.report()
    assert report.components[0].status is HealthStatus.PASS
    backend.down = True
    await fail(breaker, backend, 3)
    (redis,) = registry.monitor.report().components
    assert redis.circuit_state == "open" and redis.status is HealthStatus.FAIL
    assert "ConnectionRefusedError" in (redis.output or "")
    assert registry.monitor.report().status is HealthStatus.WARN  # important: degraded


async def test_a_failing_health_check_isolates_it_and_a_passing_one_closes_it(
    clock: FakeClock, backend: Backend
) -> None:
    breaker = make(backend, clock)
    registry = ServiceRegistry(
        [Dependency("redis", "important", breaker=breaker, check=backend.ping)], clock=clock
    )
    monitor = registry.monitor
    closed: list[str] = []

    def on_change(old: CircuitState, new: CircuitState, change: CircuitStateChange) -> None:
        if new is CircuitState.CLOSED:
            closed.append(change.reason)

    breaker.add_state_listener(on_change)
    backend.down = True
    await monitor.probe("redis")
    assert breaker.state is CircuitState.ISOLATED  # every user skips Redis at once
    backend.down = False
    await monitor.probe("redis")
    assert breaker.available and closed == ["manual"]  # users hear "back" and resync


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("timeout", {"timeout": 0}),
        ("failure_threshold", {"failure_threshold": 0}),
        ("retry_interval", {"retry_interval": -1}),
        ("name", {"name": ""}),
        ("should_handle", {"should_handle": 3}),
    ],
)
async def test_invalid_options_name_the_field(field: str, kwargs: dict[str, Any]) -> None:
    async def ping() -> None:
        return None

    with pytest.raises(InvalidOptionsError, match=rf"BackendBreaker\.{field}"):
        BackendBreaker(ping, **kwargs)
    with pytest.raises(InvalidOptionsError, match=r"BackendBreaker\.probe"):
        BackendBreaker(None)  # type: ignore[arg-type]


async def test_defaults(backend: Backend) -> None:
    breaker = BackendBreaker(backend.ping)
    assert (breaker.name, breaker.timeout, breaker.failure_threshold, breaker.retry_interval) == (
        "backend",
        0.25,
        3,
        1.0,
    )
    assert "closed" in repr(breaker)
