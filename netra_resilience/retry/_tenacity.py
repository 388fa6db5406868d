"""Just enough of tenacity's ``RetryCallState`` for its ``stop_*`` and ``wait_*`` objects.

Built only on the retry path and only when ``stop=`` or ``wait=`` was given, so tenacity (and
its 16 µs per call) stays off the success path. tenacity itself is never imported.
"""

from __future__ import annotations

from typing import Any

from netra_resilience.outcome import Outcome


class AttemptFuture:
    """The part of ``tenacity.Future`` that ``wait_exception`` and friends read."""

    __slots__ = ("_outcome", "attempt_number")

    def __init__(self, outcome: Outcome[Any], attempt_number: int) -> None:
        self._outcome = outcome
        self.attempt_number = attempt_number

    @property
    def failed(self) -> bool:
        return self._outcome.exception is not None

    def exception(self) -> BaseException | None:
        return self._outcome.exception

    def result(self) -> Any:
        return self._outcome.unwrap()


class RetryCallState:
    """Duck-typed ``tenacity.RetryCallState``: attempt numbers are one-based, as there."""

    __slots__ = (
        "args",
        "attempt_number",
        "fn",
        "idle_for",
        "kwargs",
        "next_action",
        "outcome",
        "outcome_timestamp",
        "retry_object",
        "start_time",
        "upcoming_sleep",
    )

    def __init__(
        self,
        *,
        attempt_number: int,
        outcome: Outcome[Any],
        start_time: float,
        outcome_timestamp: float,
        idle_for: float,
        state: Any,
    ) -> None:
        self.attempt_number = attempt_number
        self.outcome = AttemptFuture(outcome, attempt_number)
        self.start_time = start_time
        self.outcome_timestamp = outcome_timestamp
        self.idle_for = idle_for
        self.upcoming_sleep = 0.0
        self.next_action = None
        self.retry_object = None
        if isinstance(state, tuple) and len(state) == 3:
            self.fn, self.args, self.kwargs = state
        else:
            self.fn, self.args, self.kwargs = None, (), {}

    @property
    def seconds_since_start(self) -> float:
        return self.outcome_timestamp - self.start_time
