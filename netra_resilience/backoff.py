"""Backoff delay math, following Polly v8's ``RetryHelper`` exactly (pure functions, no clock).

* ``CONSTANT``: ``d``; ``LINEAR``: ``d * (attempt + 1)``; ``EXPONENTIAL``: ``d * 2**attempt``
  (``attempt`` is zero-based: the first retry uses ``attempt=0``).
* With jitter, constant and linear get a uniform ±25 % (Polly's ``ApplyJitter`` with
  ``JitterFactor = 0.5``: ``d + (d * 0.5 * random() - d * 0.25)``, so ``random() = 0.5`` gives
  exactly ``d``).
* Exponential with jitter is Polly's *decorrelated jitter v2* (George Polevoy's formula): its
  median delays sit near ``d * 2**attempt`` but consecutive delays are decorrelated, so a crowd
  of clients does not retry in lockstep. It needs the previous step's value, which the caller
  threads through as ``previous_state`` (start each execution at ``0.0``).
* ``max_delay`` clamps the computed delay (and stands in for an overflowed one). It never
  applies to server hints or to a delay generator's value; those are the retry's business.

Unlike Polly, delays are float seconds and are not rounded to 100 ns ticks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum

__all__ = ["Backoff", "compute_delay"]

_JITTER_FACTOR = 0.5
_EXPONENTIAL_FACTOR = 2.0
# Decorrelated jitter v2 constants (Polly): PFactor smooths the first delay; the scaling factor
# puts the median delays near d, 2d, 4d, ... instead of 1.4d, 2.8d, 5.6d, ...
_P_FACTOR = 4.0
_RP_SCALING_FACTOR = 1 / 1.4


class Backoff(StrEnum):
    """How the delay grows between retries."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


def _apply_jitter(delay: float, random: Callable[[], float]) -> float:
    offset = delay * _JITTER_FACTOR / 2
    return delay + (delay * _JITTER_FACTOR * random() - offset)


def _decorrelated_jitter(
    attempt: int, base_delay: float, previous: float, random: Callable[[], float]
) -> tuple[float, float]:
    t = attempt + random()
    try:
        following = math.pow(_EXPONENTIAL_FACTOR, t) * math.tanh(math.sqrt(_P_FACTOR * t))
    except OverflowError:  # t >= 1024 (Polly issue #2163): saturate instead of going negative
        return math.inf, math.inf
    if math.isinf(following):
        return math.inf, following
    return (following - previous) * _RP_SCALING_FACTOR * base_delay, following


def compute_delay(
    backoff: Backoff | str,
    attempt: int,
    base_delay: float,
    *,
    use_jitter: bool,
    random: Callable[[], float],
    previous_state: float = 0.0,
    max_delay: float | None = None,
) -> tuple[float, float]:
    """Return ``(delay, state)`` for the retry after zero-based ``attempt``.

    ``state`` is only meaningful for exponential backoff with jitter; pass it back as
    ``previous_state`` on the next call of the same execution. A ``base_delay`` of zero means
    no delay at all (and consumes no randomness), as in Polly.
    """
    kind = Backoff(backoff)  # also rejects an unknown name with ValueError
    if base_delay == 0:
        return 0.0, previous_state
    state = previous_state
    try:
        if kind is Backoff.CONSTANT:
            delay = _apply_jitter(base_delay, random) if use_jitter else base_delay
        elif kind is Backoff.LINEAR:
            delay = base_delay * (attempt + 1)
            if use_jitter:
                delay = _apply_jitter(delay, random)
        elif use_jitter:
            delay, state = _decorrelated_jitter(attempt, base_delay, previous_state, random)
        else:
            delay = math.pow(_EXPONENTIAL_FACTOR, attempt) * base_delay
    except OverflowError:
        delay = math.inf
    if max_delay is not None and delay > max_delay:
        delay = max_delay
    return max(delay, 0.0), state
