"""What the drill measures per run and how a scenario's scorecard is judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["answered", "degraded", "failed"]

MIN_REPLY_RATIO = 0.99
"""At least 99 % of requests answered or degraded with a reply."""
MIN_COMPLETED_RATIO = 1.0
"""Every run's event stream ends with ``agent_completed``."""
MIN_EVENT_DELIVERY = 0.995
"""Origin requirement: more than 99.5 % of events delivered while degraded."""
MAX_DETECT_SECONDS = 5.0
"""Origin requirement: failure detected in under 5 s."""
MAX_RECOVER_SECONDS = 60.0
"""Origin requirement: recovery detected in under 60 s."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of one simulated user."""

    at: float  # seconds since the drill started
    latency: float
    outcome: Outcome
    phase: str  # "warmup" | "fault" | "recovery"
    degraded: dict[str, str]
    events: int
    expected_events: int
    completed: bool  # the event stream ended with agent_completed
    leaked: int  # occurrences of the secret canary in what the user received
    channel: str  # "http" | "ws"


@dataclass(frozen=True, slots=True)
class HealthPoint:
    at: float
    status: str
    circuits: dict[str, str]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(slots=True)
class ScenarioResult:
    name: str
    title: str
    started: float
    fault_at: float | None = None
    cleared_at: float | None = None
    ended: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    health: list[HealthPoint] = field(default_factory=list)
    detect_seconds: float | None = None
    recover_seconds: float | None = None
    expects_detection: bool = True
    errors: list[str] = field(default_factory=list)

    # -- the scorecard -----------------------------------------------------------------
    @property
    def requests(self) -> int:
        return len(self.samples)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for s in self.samples if s.outcome == outcome)

    @property
    def replied_ratio(self) -> float:
        if not self.samples:
            return 0.0
        return (self.count("answered") + self.count("degraded")) / len(self.samples)

    @property
    def runs_completed(self) -> int:
        return sum(1 for s in self.samples if s.completed)

    @property
    def events_delivered(self) -> int:
        return sum(s.events for s in self.samples)

    @property
    def events_expected(self) -> int:
        return sum(s.expected_events for s in self.samples)

    @property
    def delivery_ratio(self) -> float:
        expected = self.events_expected
        return self.events_delivered / expected if expected else 1.0

    @property
    def secrets_leaked(self) -> int:
        return sum(s.leaked for s in self.samples)

    def latency(self, q: float) -> float | None:
        return percentile([s.latency for s in self.samples], q)

    def violations(self) -> list[str]:
        """Why this scenario fails its thresholds (empty: it passed)."""
        found = list(self.errors)
        if not self.samples:
            found.append("no requests completed")
            return found
        if self.replied_ratio < MIN_REPLY_RATIO:
            found.append(f"only {self.replied_ratio:.1%} replied (< {MIN_REPLY_RATIO:.0%})")
        if self.runs_completed < MIN_COMPLETED_RATIO * self.requests:
            missing = self.requests - self.runs_completed
            found.append(f"{missing} run(s) without a final agent_completed")
        if self.delivery_ratio < MIN_EVENT_DELIVERY:
            found.append(
                f"{self.delivery_ratio:.2%} of events delivered (< {MIN_EVENT_DELIVERY:.1%})"
            )
        if self.secrets_leaked:
            found.append(f"{self.secrets_leaked} secret leak(s)")
        if self.expects_detection:
            if self.detect_seconds is None:
                found.append("fault never detected")
            elif self.detect_seconds > MAX_DETECT_SECONDS:
                found.append(f"detected after {self.detect_seconds:.1f} s (> 5 s)")
            if self.recover_seconds is None:
                found.append("never recovered")
            elif self.recover_seconds > MAX_RECOVER_SECONDS:
                found.append(f"recovered after {self.recover_seconds:.1f} s (> 60 s)")
        return found

    @property
    def passed(self) -> bool:
        return not self.violations()
