"""Agent engine middleware: wrap your engine so its runs survive failing dependencies.

``wrap_engine(engine, hooks=..., tools=...)`` gives every run a bound context, ordered events
(``agent_started`` ... ``agent_completed``, always a final one), hooks behind breakers and
tools behind their own pipelines (``Tool(..., effect=Effect.IDEMPOTENT)`` says what repeating a
call does, see :mod:`netra_resilience.effects`), and with ``event_log=`` every run's events kept
for resuming by ``(run_id, last seq)`` (``InMemoryEventLog``; ``RedisEventLog`` across replicas).
See ``examples/engine_quickstart.py``.
"""

from netra_resilience.effects import Effect
from netra_resilience.engine._event_log import (
    LOGGED_SEQ,
    EndableEventLog,
    Event,
    EventLog,
    InMemoryEventLog,
    ReplayUnavailableError,
    RunLogWriter,
    Stored,
    ended_by_sweep,
)
from netra_resilience.engine._hooks import Hook, HookFn, HookQueue, HooksLayer
from netra_resilience.engine._ledger import InMemoryRunLedger, LedgerEntry, RunLeases, RunLedger
from netra_resilience.engine._run import (
    DeliveryStats,
    Engine,
    EngineLayer,
    EventObserver,
    EventOptions,
    EventSink,
    EventType,
    PassThroughLayer,
    RunEvents,
    RunRequest,
    RunResult,
    RunStatus,
    RunSteps,
    RunTools,
    ToolCall,
    ToolFailure,
    ToolFailureReason,
    ToolOk,
    ToolResult,
)
from netra_resilience.engine._runner import ResilientEngine, wrap_engine
from netra_resilience.engine._tools import Tool, ToolFn, ToolsLayer

__all__ = [
    "LOGGED_SEQ",
    "DeliveryStats",
    "Effect",
    "EndableEventLog",
    "Engine",
    "EngineLayer",
    "Event",
    "EventLog",
    "EventObserver",
    "EventOptions",
    "EventSink",
    "EventType",
    "Hook",
    "HookFn",
    "HookQueue",
    "HooksLayer",
    "InMemoryEventLog",
    "InMemoryRunLedger",
    "LedgerEntry",
    "PassThroughLayer",
    "ReplayUnavailableError",
    "ResilientEngine",
    "RunEvents",
    "RunLeases",
    "RunLedger",
    "RunLogWriter",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "RunSteps",
    "RunTools",
    "Stored",
    "Tool",
    "ToolCall",
    "ToolFailure",
    "ToolFailureReason",
    "ToolFn",
    "ToolOk",
    "ToolResult",
    "ToolsLayer",
    "ended_by_sweep",
    "wrap_engine",
]
