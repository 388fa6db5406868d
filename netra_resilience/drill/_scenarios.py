"""What the drill runs and how it judges it: the scenarios and the scorecard's thresholds.

The nine origin failure scenarios plus three LLM response faults and a tool whose answer is
lost after its upstream did the work. Each scenario switches faults on through the target's
demo endpoints (``/demo/faults``), lets simulated users keep talking to the agent, then clears
the faults and watches recovery. A fault message carries
the drill's secret canary, so a leak anywhere in what users receive is counted. Every request
becomes a :class:`Sample`; a :class:`ScenarioResult` judges the samples against the origin
requirements (replies, event delivery, time to detect and to recover, no leaks).

Standard library only: the command line's ``--help`` and the scorecard need no extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DetectVia = Literal["response", "health", "none"]

PLAIN_MESSAGES = ("hello there", "what can you do?", "summarise our chat")
TOOL_MESSAGES = ("use the tool for Paris", "ask the tool about Oslo", "tool: weather in Rome")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One failure to survive.

    * ``faults``: ``(dependency, fault)`` pairs posted to ``/demo/faults/{dependency}``;
      ``"{canary}"`` in a fault's ``message`` is replaced by the drill's secret canary.
    * ``expects``: the dependency whose degradation shows the fault was noticed (time to
      detect / recover are measured on it); ``detect_via="health"`` reads ``/health``
      instead of the responses; ``"none"`` when the backend absorbs the fault unseen.
    * ``tool``: users ask for the tool (the scenario's fault sits on the tool path).
    * ``ws_only``: every user on the WebSocket (where answers stream token by token).
    * ``churn``: every run on a fresh connection (HTTP without keep-alive, WebSockets
      reopened between runs), as behind a load balancer that keeps moving connections.
    * ``runs``: each user starts one resumable run (``WS /v1/runs/ws``) and, when its socket
      drops, reconnects through the target with ``{"resume": run_id, "last_seq": n}`` until
      the run's final event; the faults are switched on once a third of the runs are in
      flight at once, and stay (a crashed replica is the operator's to restart). Scored as
      runs preserved / interrupted / lost and events lost / duplicated (by seq).
    """

    name: str
    title: str
    origin: str
    faults: tuple[tuple[str, dict[str, Any]], ...] = ()
    expects: str | None = None
    detect_via: DetectVia = "response"
    tool: bool = False
    churn: bool = False
    ws_only: bool = False
    runs: bool = False
    notes: str = ""
    messages: tuple[str, ...] = field(default=PLAIN_MESSAGES)

    def user_messages(self) -> tuple[str, ...]:
        return TOOL_MESSAGES if self.tool else self.messages


def _error(message: str = "{canary}", **extra: Any) -> dict[str, Any]:
    return {"kind": "error", "message": f"connection refused (token={message})", **extra}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "redis_unavailable",
        "Redis unavailable",
        "Redis unavailability with PostgreSQL fallback",
        faults=(("redis", _error()),),
        expects="redis",
        notes="sessions fall back to the database; written back when Redis returns",
    ),
    Scenario(
        "database_pool_exhaustion",
        "Database connection exhaustion",
        "PostgreSQL connection exhaustion",
        faults=(("database", {"kind": "latency", "seconds": 0.05}),),
        expects=None,
        detect_via="none",
        notes="every query holds its connection 50 ms longer; a burst queues in front of the "
        "pool instead of failing inside it",
    ),
    Scenario(
        "llm_timeout",
        "LLM timeout",
        "LLM API timeout with exponential backoff and circuit breaker",
        faults=(("llm", {"kind": "latency", "seconds": 30}),),
        expects="llm",
        notes="attempt timeouts, retries with backoff, breaker opens; stale answers from the "
        "cache, a canned reply for new questions",
    ),
    Scenario(
        "tool_rate_limited",
        "External API rate limiting",
        "External API rate limiting",
        faults=(("tool", {"kind": "rate_limit", "seconds": 2, "message": "429 {canary}"}),),
        expects="tool",
        tool=True,
        notes="an upstream 429 with Retry-After pauses the tool's limiter for every caller; "
        "the agent answers without the tool",
    ),
    Scenario(
        "service_discovery_failure",
        "Service discovery failure",
        "Service discovery failure at runtime",
        faults=(("discovery", _error()),),
        expects="discovery",
        tool=True,
        notes="the tool's endpoints keep coming from the last-known-good set (stale_endpoints)",
    ),
    Scenario(
        "health_check_failure",
        "Health-check failures and recovery",
        "Service health check failures",
        faults=(("analytics", _error()), ("monitoring", _error())),
        expects="analytics",
        detect_via="health",
        notes="hooks fail; /health turns warn (analytics optional, monitoring ignored), "
        "readiness stays up, and turns pass again after recovery",
    ),
    Scenario(
        "auth_failure",
        "Auth service failure",
        "Service authentication failure propagation",
        faults=(("auth", _error()),),
        expects="auth",
        notes="recently verified users pass on their last good verdict; nothing of the "
        "failure (the canary token) reaches a user",
    ),
    Scenario(
        "connection_churn",
        "Load balancer / connection churn",
        "Load balancer configuration issues",
        expects=None,
        detect_via="none",
        churn=True,
        notes="no keep-alive, WebSockets reopened for every run: each run must still deliver "
        "all of its events",
    ),
    Scenario(
        "dns_failure",
        "DNS resolution failure",
        "DNS resolution failures for external dependencies",
        faults=(("discovery", {"kind": "dns", "message": "tool.internal {canary}"}),),
        expects="discovery",
        tool=True,
        notes="getaddrinfo fails (EAI_AGAIN); the cached addresses keep serving",
    ),
    Scenario(
        "llm_stall",
        "LLM calls hang",
        "LLM responses that stall before answering (drill addition)",
        faults=(("llm", {"kind": "latency", "seconds": 30, "rate": 0.5}),),
        expects="llm",
        notes="half of the provider calls hang; the attempt timeout cuts them and the retry "
        "lands on a healthy call",
    ),
    Scenario(
        "llm_stream_stall",
        "LLM streams stall mid-answer",
        "LLM streaming stalls (drill addition)",
        faults=(("llm_stream", {"kind": "latency", "seconds": 30, "rate": 0.3}),),
        expects="llm",
        ws_only=True,
        notes="streams stop between tokens; the idle timeout cuts them, the cut counts in the "
        "breaker and the turn is answered again on the non-streaming path",
    ),
    Scenario(
        "llm_malformed",
        "Malformed LLM responses",
        "Malformed LLM responses (drill addition)",
        faults=(("llm", {"kind": "malformed"}),),
        expects="llm",
        notes="a proxy's error page instead of a completion: never shown, never cached",
    ),
    Scenario(
        "tool_commit_stall",
        "Tool committed, answer lost",
        "A side-effecting tool whose upstream commits and then stalls (drill addition)",
        faults=(("tool_response", {"kind": "latency", "seconds": 30}),),
        expects="tool",
        detect_via="health",
        tool=True,
        notes="the upstream did the work but never answers: the retry carries the same "
        "idempotency key (done once), the call ends tool=outcome_unknown and the agent "
        "answers without it instead of repeating the effect",
    ),
)


REPLICA_LOST = Scenario(
    "replica_lost",
    "A replica dies mid-run",
    "Load balancer: active sessions survive a replica's loss (issue 13)",
    faults=(("replica", {"kind": "crash"}),),
    expects=None,
    detect_via="none",
    ws_only=True,
    runs=True,
    notes="one replica behind the balancer SIGKILLs itself with runs in flight; their clients "
    "resume elsewhere by seq: every run ends (its answer, or interrupted by a survivor's "
    "sweep), no event lost or twice",
)

CLUSTER_SCENARIOS: tuple[Scenario, ...] = (REPLICA_LOST,)
"""Scenarios that need a cluster behind ``--target`` (a load balancer in front of two or more
replicas sharing Redis and the run ledger); run only when named with ``--scenario``."""


def scenario_names() -> list[str]:
    return [scenario.name for scenario in (*SCENARIOS, *CLUSTER_SCENARIOS)]


def select(names: list[str] | None) -> list[Scenario]:
    """The scenarios called ``names`` (all single-target ones when empty), in order."""
    if not names:
        return list(SCENARIOS)
    every = (*SCENARIOS, *CLUSTER_SCENARIOS)
    known = {scenario.name: scenario for scenario in every}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {scenario_names()}")
    return [scenario for scenario in every if scenario.name in names]


# -- measuring and judging ------------------------------------------------------------------

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


def _interrupted(sample: Sample) -> bool:
    return sample.degraded.get("replica") == "interrupted"


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
    resumable: bool = False  # a ``runs`` scenario: every event must arrive, exactly once
    duplicated: int = 0  # events a resumable run's client received twice (by seq)
    mid_run: int = 0  # resumable runs in flight when the faults went on

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
    def events_lost(self) -> int:
        """Seqs below a run's last one its client never received (gaps)."""
        return self.events_expected - self.events_delivered

    @property
    def runs_preserved(self) -> int:
        """Runs that ended with their own answer (clean or degraded) despite the fault."""
        return sum(1 for s in self.samples if s.completed and not _interrupted(s))

    @property
    def runs_interrupted(self) -> int:
        """Runs a survivor's sweep ended (``replica=interrupted``): the user was told."""
        return sum(1 for s in self.samples if s.completed and _interrupted(s))

    @property
    def runs_lost(self) -> int:
        """Runs whose client never got a final event."""
        return sum(1 for s in self.samples if not s.completed)

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
        if self.resumable and self.events_lost:
            found.append(f"{self.events_lost} event(s) lost (a seq never received)")
        if self.duplicated:
            found.append(f"{self.duplicated} event(s) delivered twice (by seq)")
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
