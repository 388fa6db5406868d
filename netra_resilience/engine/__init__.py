"""Agent engine middleware: wrap your engine so its runs survive failing dependencies.

``wrap_engine(engine, hooks=..., tools=...)`` gives every run a bound context, ordered events
(``agent_started`` ... ``agent_completed``, always a final one), hooks behind breakers and
tools behind their own pipelines. See ``examples/engine_quickstart.py``.
"""

from netra_resilience.engine._hooks import Hook, HookFn, HookQueue, HooksMiddleware
from netra_resilience.engine._run import (
    DeliveryStats,
    Engine,
    EngineMiddleware,
    EventObserver,
    EventOptions,
    EventSink,
    EventType,
    Middleware,
    RunEvents,
    RunRequest,
    RunResult,
    RunStatus,
    RunTools,
    ToolError,
    ToolErrorReason,
    ToolOk,
    ToolResult,
)
from netra_resilience.engine._runner import ResilientEngine, wrap_engine
from netra_resilience.engine._tools import Tool, ToolFn, ToolsMiddleware

__all__ = [
    "DeliveryStats",
    "Engine",
    "EngineMiddleware",
    "EventObserver",
    "EventOptions",
    "EventSink",
    "EventType",
    "Hook",
    "HookFn",
    "HookQueue",
    "HooksMiddleware",
    "Middleware",
    "ResilientEngine",
    "RunEvents",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "RunTools",
    "Tool",
    "ToolError",
    "ToolErrorReason",
    "ToolFn",
    "ToolOk",
    "ToolResult",
    "ToolsMiddleware",
    "wrap_engine",
]
