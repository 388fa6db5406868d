"""Telemetry events: what a strategy reports, with its source and the operation key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


@dataclass(frozen=True, slots=True)
class TelemetrySource:
    pipeline: str
    instance: str
    strategy: str


@dataclass(frozen=True, slots=True)
class TelemetryEvent:
    """One event. ``name`` is a stable snake_case identifier (e.g. ``circuit_opened``)."""

    name: str
    severity: Severity
    source: TelemetrySource
    operation_key: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0
