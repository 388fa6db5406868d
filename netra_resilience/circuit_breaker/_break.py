"""How long a break lasts: static or generated, stretched by an upstream hint, capped."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from netra_resilience.circuit_breaker._options import BreakDurationArgs, CircuitBreakerOptions
from netra_resilience.hints import RetryAfterHint
from netra_resilience.outcome import Outcome
from netra_resilience.validation import to_seconds


class BreakTiming:
    """``duration(args, outcome)``: the break for the outcome that opened the circuit.

    ``break_duration_generator(args)`` replaces the static duration; a generator that raises or
    answers nonsense (negative, NaN, not a number) falls back to the static one rather than
    breaking the call that tripped. An upstream ``Retry-After`` on the breaking outcome
    lengthens the break (a server that says "come back in 60 s" is not probed after 15 s).
    ``max_break_duration`` caps all of it, so a hostile hint cannot park the breaker.
    """

    __slots__ = ("_cap", "_generator", "_hint", "_static")

    def __init__(self, options: CircuitBreakerOptions) -> None:
        self._static = to_seconds(options.break_duration)
        self._cap = to_seconds(options.max_break_duration)
        self._generator: Callable[[BreakDurationArgs], float] | None = (
            options.break_duration_generator
        )
        self._hint: RetryAfterHint | None = options.retry_after

    def generated(self, args: BreakDurationArgs) -> float:
        generator = self._generator
        if generator is None:
            return self._static
        try:
            value = generator(args)
            seconds = to_seconds(value)
        except Exception:
            return self._static
        if math.isnan(seconds) or seconds < 0:
            return self._static
        return min(seconds, self._cap)

    def hinted(self, seconds: float, outcome: Outcome[Any] | None) -> float:
        hint = self._hint
        if hint is None or outcome is None:
            return seconds
        try:
            upstream = hint(outcome)
            if upstream is None or not upstream > seconds:  # NaN compares False: ignored
                return seconds
            return min(float(upstream), self._cap)
        except Exception:  # a broken hint function must not break the call that tripped
            return seconds

    @property
    def has_generator(self) -> bool:
        return self._generator is not None

    def static_for(self, outcome: Outcome[Any] | None) -> float:
        """The break before any generator runs (what a shared store is told up front)."""
        return self.hinted(self._static, outcome)

    def duration(self, args: BreakDurationArgs, outcome: Outcome[Any] | None) -> float:
        return self.hinted(self.generated(args), outcome)
