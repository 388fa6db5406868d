"""The service registry (dependencies with their pipelines and breakers) and the health
monitor that probes them in the background on the clock.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.fallback import FallbackOptions
from netra_resilience.health._dependency import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_PROBE_INTERVAL,
    BreakerLike,
    Criticality,
    Dependency,
    HealthCheck,
    HealthStatus,
)
from netra_resilience.health._report import (
    ComponentHealth,
    HealthReport,
    ProbeResult,
    aggregate,
    component,
)
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.telemetry import (
    Severity,
    Telemetry,
    TelemetryEvent,
    TelemetryListener,
    TelemetrySource,
)
from netra_resilience.validation import Seconds, duration, to_seconds

_RANK_OF = {
    Criticality.CRITICAL: 0,
    Criticality.IMPORTANT: 1,
    Criticality.OPTIONAL: 2,
    Criticality.MONITORING: 3,
}
"""Most needed first: a standby is at most ``important`` while its primary serves."""


class DependencyFields:
    """A listener wrapper: forwards each event with ``criticality`` (+ ``breaker_state``)."""

    __slots__ = ("criticality", "listener")

    def __init__(self, listener: TelemetryListener, criticality: Criticality) -> None:
        self.listener = listener
        self.criticality = criticality.value

    def on_event(self, event: TelemetryEvent) -> None:
        extra = {"criticality": self.criticality}
        if event.source.strategy == "circuit_breaker" and "state" in event.args:
            extra["breaker_state"] = str(event.args["state"])
        self.listener.on_event(replace(event, args={**event.args, **extra}))


class _Entry:
    """A dependency with everything resolved: pipeline, breaker, effective probe timings."""

    __slots__ = (
        "breaker",
        "check_timeout",
        "criticality",
        "dependency",
        "pipeline",
        "probe_interval",
    )

    def __init__(
        self,
        dependency: Dependency,
        pipeline: Pipeline,
        breaker: BreakerLike | None,
        probe_interval: float,
        check_timeout: float,
    ) -> None:
        self.dependency = dependency
        self.criticality = Criticality(dependency.criticality)
        self.pipeline = pipeline
        self.breaker = breaker
        self.probe_interval = probe_interval
        self.check_timeout = check_timeout


def find_breaker(pipeline: Pipeline) -> BreakerLike | None:
    """The pipeline's outermost circuit breaker, if it has one.

    Matched by shape (:class:`BreakerLike`), so ``CircuitBreakerStrategy`` and any custom
    breaker strategy both qualify.
    """
    for strategy in pipeline.strategies:
        if isinstance(strategy, BreakerLike):
            return strategy
    return None


def probe_timings(
    dependency: Dependency, default_interval: float, default_timeout: float
) -> tuple[float, float]:
    """The dependency's probe interval and check timeout, the registry's where unset.

    A checked dependency's timeout must fit in its interval, or probes would overlap.
    """
    owner = f"Dependency[{dependency.name}]"
    interval = dependency.probe_interval
    timeout = dependency.check_timeout
    interval = default_interval if interval is None else to_seconds(interval)
    timeout = default_timeout if timeout is None else to_seconds(timeout)
    if dependency.check is not None and timeout > interval:
        raise InvalidOptionsError(
            owner,
            "check_timeout",
            f"must not exceed the probe interval ({interval} s), got {timeout} s",
        )
    return interval, timeout


def build_pipeline(
    dependency: Dependency,
    *,
    clock: Clock,
    random: Callable[[], float],
    telemetry: TelemetryListener | None,
) -> Pipeline:
    """The dependency's pipeline from its declared fallback and strategies."""
    if telemetry is not None:
        telemetry = DependencyFields(telemetry, Criticality(dependency.criticality))
    builder = PipelineBuilder(dependency.name, clock=clock, random=random, telemetry=telemetry)
    if dependency.fallback is not None:
        builder.add(FallbackOptions(action=dependency.fallback))
    for options in dependency.strategies:
        builder.add(options)
    return builder.build()


def _status_of(value: object) -> HealthStatus:
    if value is False:
        return HealthStatus.FAIL
    if isinstance(value, HealthStatus):
        return value
    return HealthStatus.PASS


def _timed_out(deadline: Any) -> bool:
    """Did the clock's own deadline fire (``asyncio.Timeout.expired()``)?"""
    expired = getattr(deadline, "expired", None)
    return bool(expired()) if callable(expired) else False


async def run_check(
    check: HealthCheck, clock: Clock, check_timeout: float
) -> tuple[HealthStatus, str | None]:
    """The check's raw status and, when it failed by raising, the error type."""
    error_type: str | None = None
    deadline: Any = None
    try:
        async with clock.timeout(check_timeout) as deadline:
            raw = _status_of(await check())
    except TimeoutError as exc:
        raw = HealthStatus.FAIL
        error_type = "timeout" if _timed_out(deadline) else type(exc).__name__
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # we are being stopped
        raw, error_type = HealthStatus.FAIL, "CancelledError"  # the check cancelled itself
    except Exception as exc:
        raw, error_type = HealthStatus.FAIL, type(exc).__name__
    return raw, error_type


_log = logging.getLogger("netra_resilience.health")


def emit_status_change(
    telemetry: Telemetry,
    entry: _Entry,
    status: HealthStatus,
    previous: ProbeResult | None,
    error_type: str | None,
) -> None:
    """Report the check's status when it differs from the last one (or is the first)."""
    if previous is None or previous.status is not status:
        telemetry.emit(
            "health_check_status_changed",
            Severity.INFO if status is HealthStatus.PASS else Severity.WARNING,
            dependency=entry.dependency.name,
            criticality=entry.criticality.value,
            state=status.value,
            previous_state=previous.status.value if previous else None,
            error_type=error_type,
        )


async def sync_breaker(
    entry: _Entry, status: HealthStatus, telemetry: Telemetry, isolated: set[str]
) -> None:
    """Isolate the breaker on failure; close it on a pass if ``isolated`` says we opened it."""
    breaker = entry.breaker
    name = entry.dependency.name
    if breaker is None or not entry.dependency.isolate_on_failure:
        return
    state = str(breaker.state)
    try:
        if status is HealthStatus.FAIL and state != "isolated":
            await breaker.isolate()
            isolated.add(name)
            telemetry.emit(
                "health_check_isolated_breaker",
                Severity.WARNING,
                dependency=name,
                breaker_state="isolated",
            )
        elif status is HealthStatus.PASS and name in isolated:
            isolated.discard(name)
            if state == "isolated":
                await breaker.close()
                telemetry.emit(
                    "health_check_closed_breaker",
                    Severity.INFO,
                    dependency=name,
                    breaker_state="closed",
                )
    except Exception as exc:  # a misbehaving breaker must not stop the prober
        _log.warning("could not update the breaker of %s: %s", name, type(exc).__name__)


class ServiceRegistry:
    """Declares the service's dependencies once; owned by the application (no global).

    It builds each dependency's pipeline (with the registry's clock, randomness and
    telemetry), finds its breaker, and answers ``criticality_of(name)`` for the middleware
    that turns a critical dependency's rejection into a 503. ``monitor`` runs the health
    checks. Bad configuration raises :class:`InvalidOptionsError` naming the field.
    """

    def __init__(
        self,
        dependencies: Iterable[Dependency] = (),
        *,
        probe_interval: Seconds = DEFAULT_PROBE_INTERVAL,
        check_timeout: Seconds = DEFAULT_CHECK_TIMEOUT,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        self.probe_interval = duration("ServiceRegistry", "probe_interval", probe_interval)
        self.check_timeout = duration("ServiceRegistry", "check_timeout", check_timeout)
        self.clock = clock or SYSTEM_CLOCK
        self.random = random or _random.Random().random
        self.telemetry = telemetry
        self._entries: dict[str, _Entry] = {}
        self._monitor: HealthMonitor | None = None
        for dependency in dependencies:
            self.add(dependency)

    def add(self, dependency: Dependency) -> Pipeline:
        """Register ``dependency``; returns its pipeline."""
        declared: object = dependency
        if not isinstance(declared, Dependency):
            kind = type(declared).__name__
            raise InvalidOptionsError("ServiceRegistry", "dependencies", f"got {kind}")
        if dependency.name in self._entries:
            raise InvalidOptionsError(
                "ServiceRegistry", "dependencies", f"names {dependency.name!r} twice"
            )
        if self._monitor is not None and self._monitor.running:
            raise RuntimeError("ServiceRegistry.add() after the health monitor started")
        standby_for = dependency.standby_for
        if standby_for is not None and standby_for not in self._entries:
            raise InvalidOptionsError(
                f"Dependency[{dependency.name}]",
                "standby_for",
                f"names {standby_for!r}, which is not registered (declare the primary first)",
            )
        interval, timeout = probe_timings(dependency, self.probe_interval, self.check_timeout)
        pipeline = dependency.pipeline or build_pipeline(
            dependency, clock=self.clock, random=self.random, telemetry=self.telemetry
        )
        breaker = dependency.breaker or find_breaker(pipeline)
        self._entries[dependency.name] = _Entry(dependency, pipeline, breaker, interval, timeout)
        return pipeline

    # -- lookups ---------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> Dependency:
        return self._entries[name].dependency

    def criticality_of(self, name: str | None) -> Criticality | None:
        """The dependency's criticality, ``None`` when ``name`` is not registered."""
        entry = self._entries.get(name) if name is not None else None
        return entry.criticality if entry is not None else None

    def pipeline(self, name: str) -> Pipeline:
        """The dependency's pipeline: run its calls through it (``await pipeline.execute(...)``)."""
        return self._entries[name].pipeline

    def probe_interval_of(self, name: str | None) -> float | None:
        """How often ``name`` is health-checked (``None``: unknown or no check): when an
        isolated breaker may be closed again, so a fair ``Retry-After``."""
        entry = self._entries.get(name) if name is not None else None
        if entry is None or entry.dependency.check is None:
            return None
        return entry.probe_interval

    def breaker(self, name: str) -> BreakerLike | None:
        return self._entries[name].breaker

    def entries(self) -> list[_Entry]:
        return list(self._entries.values())

    @property
    def monitor(self) -> HealthMonitor:
        """The registry's health monitor (created on first use; start it in your lifespan)."""
        if self._monitor is None:
            self._monitor = HealthMonitor(self)
        return self._monitor


class HealthMonitor:
    """Runs the registry's health checks in the background and builds health reports."""

    def __init__(self, registry: ServiceRegistry, *, clock: Clock | None = None) -> None:
        self._registry = registry
        self._clock = clock or registry.clock
        self._results: dict[str, ProbeResult] = {}
        self._isolated: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self.draining = False
        """Set on shutdown (and by :meth:`stop`): readiness then fails so traffic drains."""

    @property
    def running(self) -> bool:
        return self._running

    def result(self, name: str) -> ProbeResult | None:
        """The cached result of ``name``'s last health check."""
        return self._results.get(name)

    async def start(self) -> None:
        """Run every check once (so the first report is real), then keep probing."""
        if self._running:
            return
        self._running = True
        self.draining = False
        await self.probe_all()
        for entry in self._registry.entries():
            if entry.dependency.check is not None:
                task = asyncio.create_task(
                    self._loop(entry), name=f"netra-health:{entry.dependency.name}"
                )
                self._tasks.append(task)

    async def stop(self) -> None:
        """Stop probing and mark the service as draining (readiness fails)."""
        self._running = False
        self.draining = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def probe_all(self) -> None:
        """Run every health check now, concurrently (each bounded by its timeout)."""
        entries = [e for e in self._registry.entries() if e.dependency.check is not None]
        await asyncio.gather(*(self._probe(entry) for entry in entries))

    async def probe(self, name: str) -> ProbeResult | None:
        """Run ``name``'s health check now; ``None`` if it has none."""
        entry = next(e for e in self._registry.entries() if e.dependency.name == name)
        if entry.dependency.check is None:
            return None
        return await self._probe(entry)

    async def _loop(self, entry: _Entry) -> None:
        clock = self._clock
        interval = entry.probe_interval
        next_at = clock.monotonic() + interval
        while True:
            await clock.sleep(max(next_at - clock.monotonic(), 0.0))
            await self._probe(entry)
            next_at += interval
            now = clock.monotonic()
            if next_at <= now:  # fell behind (a stalled loop): skip the missed ticks
                next_at = now + interval

    async def _probe(self, entry: _Entry) -> ProbeResult:
        dependency = entry.dependency
        check = dependency.check
        assert check is not None
        clock = self._clock
        started = clock.monotonic()
        raw, error_type = await run_check(check, clock, entry.check_timeout)
        previous = self._results.get(dependency.name)
        failures = 0
        status = raw
        if raw is HealthStatus.FAIL:
            failures = (previous.consecutive_failures if previous else 0) + 1
            if failures < dependency.failure_threshold:
                status = HealthStatus.WARN
        result = ProbeResult(status, clock.now(), clock.monotonic() - started, error_type, failures)
        self._results[dependency.name] = result
        telemetry = self._telemetry(entry)
        emit_status_change(telemetry, entry, status, previous, error_type)
        await sync_breaker(entry, status, telemetry, self._isolated)
        return result

    def _telemetry(self, entry: _Entry) -> Telemetry:
        source = TelemetrySource(entry.dependency.name, "", "health")
        return Telemetry(self._registry.telemetry, source, self._clock)

    def report(self) -> HealthReport:
        """The current health, from live breaker state and cached check results."""
        now = self._clock.now()
        components: list[ComponentHealth] = []
        status_of: dict[str, HealthStatus] = {}
        for entry in self._registry.entries():
            breaker = entry.breaker
            dependency = entry.dependency
            criticality = entry.criticality
            standby_note: str | None = None
            primary = dependency.standby_for
            if primary is not None and status_of.get(primary) is not HealthStatus.FAIL:
                # Nothing on the request path waits on a standby while its primary serves.
                criticality = max(criticality, Criticality.IMPORTANT, key=_RANK_OF.__getitem__)
                standby_note = f"standby for {primary}, which serves"
            item = component(
                name=dependency.name,
                criticality=criticality,
                component_type=dependency.component_type,
                state=str(breaker.state) if breaker is not None else None,
                breaker_retry_after=breaker.retry_after if breaker is not None else None,
                last_failure_type=getattr(breaker, "last_failure_type", None),
                probe=self._results.get(dependency.name),
                has_check=dependency.check is not None,
                probe_interval=entry.probe_interval,
                now=now,
                shared=dependency.shared,
                note=standby_note,
            )
            status_of[dependency.name] = item.status
            components.append(item)
        items = tuple(components)
        return HealthReport(aggregate(items), items, now, self.draining)


__all__ = [
    "ServiceRegistry",
    "_Entry",
    "find_breaker",
]
