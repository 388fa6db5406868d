"""``SettingsOptions``: the keyword arguments of ``ServiceRegistry.from_settings``/``from_env``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from ..clock import Clock
from ..pipeline import Pipeline
from ..strategy import StrategyOptions
from ..telemetry import TelemetryListener
from ._dependency import HealthCheck


class SettingsOptions(TypedDict, total=False):
    """What settings cannot express, by dependency name, plus the registry's runtime."""

    checks: Mapping[str, HealthCheck]
    pipelines: Mapping[str, Pipeline]
    strategies: Mapping[str, Sequence[StrategyOptions]]
    fallbacks: Mapping[str, Callable[..., Any]]
    clock: Clock | None
    random: Callable[[], float] | None
    telemetry: TelemetryListener | None
