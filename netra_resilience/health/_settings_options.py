"""``SettingsOptions``: the keyword arguments of ``ServiceRegistry.from_settings``/``from_env``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from netra_resilience.clock import Clock
from netra_resilience.health._dependency import HealthCheck
from netra_resilience.pipeline import Pipeline
from netra_resilience.strategy import StrategyOptions
from netra_resilience.telemetry import TelemetryListener


class SettingsOptions(TypedDict, total=False):
    """What settings cannot express, by dependency name, plus the registry's runtime."""

    checks: Mapping[str, HealthCheck]
    pipelines: Mapping[str, Pipeline]
    strategies: Mapping[str, Sequence[StrategyOptions]]
    fallbacks: Mapping[str, Callable[..., Any]]
    clock: Clock | None
    random: Callable[[], float] | None
    telemetry: TelemetryListener | None
