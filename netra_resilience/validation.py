"""Validation for options objects: durations, numbers and callables, each failure an
``InvalidOptionsError`` naming the field. Public so that adapters validate the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeAlias

from netra_resilience.exceptions import InvalidOptionsError

Seconds: TypeAlias = float | int | timedelta
"""A duration given as seconds (``float``/``int``) or a :class:`datetime.timedelta`."""


def to_seconds(value: Seconds) -> float:
    """Normalise a duration to float seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected seconds as float or timedelta, got {type(value).__name__}")
    return float(value)


def duration(
    owner: str,
    field: str,
    value: Seconds,
    *,
    minimum: float = 0.0,
    allow_zero: bool = False,
    maximum: float | None = None,
) -> float:
    """Validate a duration and return it as float seconds."""
    try:
        seconds = to_seconds(value)
    except TypeError as exc:
        raise InvalidOptionsError(owner, field, str(exc)) from None
    if math.isnan(seconds):
        raise InvalidOptionsError(owner, field, "must be a number, got NaN")
    if seconds < minimum or (seconds == 0 and not allow_zero and minimum == 0):
        bound = f">= {minimum}" if allow_zero or minimum > 0 else "> 0"
        raise InvalidOptionsError(owner, field, f"must be {bound} seconds, got {seconds!r}")
    if maximum is not None and seconds > maximum:
        raise InvalidOptionsError(owner, field, f"must be <= {maximum} seconds, got {seconds!r}")
    return seconds


def optional_duration(
    owner: str, field: str, value: Seconds | None, *, allow_zero: bool = False
) -> float | None:
    if value is None:
        return None
    return duration(owner, field, value, allow_zero=allow_zero)


def ratio(owner: str, field: str, value: float, *, allow_zero: bool = False) -> float:
    """Validate a ratio in (0, 1] (or [0, 1] with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidOptionsError(owner, field, f"must be a number between 0 and 1, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not low_ok or value > 1:
        low = "0 <=" if allow_zero else "0 <"
        raise InvalidOptionsError(owner, field, f"must satisfy {low} value <= 1, got {value!r}")
    return float(value)


def integer(
    owner: str, field: str, value: int, *, minimum: int = 1, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionsError(owner, field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidOptionsError(owner, field, f"must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidOptionsError(owner, field, f"must be <= {maximum}, got {value!r}")
    return value


def number(
    owner: str, field: str, value: float, *, minimum: float = 0.0, exclusive: bool = True
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidOptionsError(owner, field, f"must be a number, got {value!r}")
    if math.isinf(value) or (value <= minimum if exclusive else value < minimum):
        op = ">" if exclusive else ">="
        raise InvalidOptionsError(
            owner, field, f"must be a finite number {op} {minimum}, got {value!r}"
        )
    return float(value)


def callable_or_none(owner: str, field: str, value: Callable[..., Any] | None) -> None:
    if value is not None and not callable(value):
        raise InvalidOptionsError(owner, field, f"must be callable, got {type(value).__name__}")


def set_field(obj: object, field: str, value: object) -> None:
    """Store a normalised value on a frozen dataclass from ``__post_init__``."""
    object.__setattr__(obj, field, value)
