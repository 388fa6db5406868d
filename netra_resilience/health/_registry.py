"""``ServiceRegistry``: the application's declared dependencies, their pipelines and breakers."""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Unpack

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health._dependency import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_PROBE_INTERVAL,
    BreakerLike,
    Dependency,
)
from netra_resilience.health._entry import _Entry, build_pipeline, find_breaker, probe_timings
from netra_resilience.health._settings_options import SettingsOptions
from netra_resilience.health._status import Criticality
from netra_resilience.pipeline import Pipeline
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import Seconds, duration

if TYPE_CHECKING:
    from netra_resilience.health._monitor import HealthMonitor

__all__ = ["ServiceRegistry", "SettingsOptions", "_Entry", "find_breaker"]


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
            from netra_resilience.health._monitor import HealthMonitor

            self._monitor = HealthMonitor(self)
        return self._monitor

    # -- configuration from settings -------------------------------------------------
    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any] | object, **options: Unpack[SettingsOptions]
    ) -> ServiceRegistry:
        """Build from a settings mapping (or a pydantic-settings object).

        Shape and errors: see ``netra_resilience.health._settings``. Code-only parts come by
        dependency name: ``checks=``, ``pipelines=``, ``strategies=``, ``fallbacks=``.
        """
        from netra_resilience.health._settings import registry_from_settings

        return registry_from_settings(cls, settings, options)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        prefix: str = "NETRA_",
        **options: Unpack[SettingsOptions],
    ) -> ServiceRegistry:
        """Build from ``NETRA_DEPENDENCIES=postgres=critical,redis=important``,
        ``NETRA_PROBE_INTERVAL`` and ``NETRA_CHECK_TIMEOUT`` (``os.environ`` by default)."""
        from netra_resilience.health._settings import registry_from_settings, settings_from_env

        return registry_from_settings(cls, settings_from_env(environ, prefix), options)
