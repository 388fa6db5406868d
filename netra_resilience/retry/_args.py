"""What the retry's hooks receive: frozen, slotted records (stamina's ``RetryDetails`` style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome


@dataclass(frozen=True, slots=True)
class RetryDelayArgs:
    """Input of ``delay_generator``.

    ``attempt`` is the zero-based attempt that just failed; ``delay`` the backoff the retry
    would use; ``retry_after`` the server hint read from the outcome (``None`` if none).
    """

    attempt: int
    outcome: Outcome[Any]
    context: ResilienceContext
    delay: float
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class OnRetryArgs:
    """Input of ``on_retry``, called before the retry sleeps.

    ``attempt`` is the zero-based attempt that just failed, ``delay`` the sleep that follows,
    ``duration`` how long that attempt took (seconds, by the pipeline's clock).
    """

    attempt: int
    delay: float
    duration: float
    outcome: Outcome[Any]
    context: ResilienceContext
