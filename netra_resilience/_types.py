"""Small shared types: durations and callback aliases."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TypeAlias

Seconds: TypeAlias = float | int | timedelta
"""A duration given as seconds (``float``/``int``) or a :class:`datetime.timedelta`."""


def to_seconds(value: Seconds) -> float:
    """Normalise a duration to float seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected seconds as float or timedelta, got {type(value).__name__}")
    return float(value)


def is_finite_number(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
