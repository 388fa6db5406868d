"""``HealthMonitor``: background health checks on the injected clock, with cached results.

One task per checked dependency runs its check every ``probe_interval`` (fixed rate), each
run bounded by ``check_timeout`` (validated to be at most the interval), so a failure that
makes the check fail fast is seen within one interval, and a hanging one within one interval
plus the timeout. Health requests only read the cache: they never fan out to dependencies.

What a result sets off (events, breaker isolation): see ``_check_effects``.
"""

from __future__ import annotations

import asyncio

from netra_resilience.clock import Clock
from netra_resilience.health._check_effects import emit_status_change, sync_breaker
from netra_resilience.health._check_run import run_check
from netra_resilience.health._registry import ServiceRegistry, _Entry
from netra_resilience.health._report import HealthReport, ProbeResult, aggregate, component
from netra_resilience.health._status import HealthStatus
from netra_resilience.telemetry import Telemetry, TelemetrySource


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
        components = []
        for entry in self._registry.entries():
            breaker = entry.breaker
            dependency = entry.dependency
            components.append(
                component(
                    name=dependency.name,
                    criticality=entry.criticality,
                    component_type=dependency.component_type,
                    state=str(breaker.state) if breaker is not None else None,
                    breaker_retry_after=breaker.retry_after if breaker is not None else None,
                    last_failure_type=getattr(breaker, "last_failure_type", None),
                    probe=self._results.get(dependency.name),
                    has_check=dependency.check is not None,
                    probe_interval=entry.probe_interval,
                    now=now,
                )
            )
        items = tuple(components)
        return HealthReport(aggregate(items), items, now, self.draining)
