"""Agent engine middleware: wrap your engine so its runs survive failing dependencies.

``wrap_engine(engine, hooks=..., tools=...)`` gives every run a bound context, ordered events
(``agent_started`` ... ``agent_completed``, always a final one), hooks behind breakers and
tools behind their own pipelines. See ``examples/engine_quickstart.py``.
"""

from netra_resilience.engine._delivery import DeliveryStats
from netra_resilience.engine._emitter import EventObserver, RunEvents
from netra_resilience.engine._hook_queue import HookQueue
from netra_resilience.engine._hooks import Hook, HookFn
from netra_resilience.engine._hooks_middleware import HooksMiddleware
from netra_resilience.engine._middleware import EngineMiddleware, Middleware
from netra_resilience.engine._options import EventOptions
from netra_resilience.engine._result import RunResult
from netra_resilience.engine._run_tools import RunTools
from netra_resilience.engine._runner import ResilientEngine
from netra_resilience.engine._tool_result import ToolError, ToolErrorReason, ToolOk, ToolResult
from netra_resilience.engine._tools import Tool, ToolFn
from netra_resilience.engine._tools_middleware import ToolsMiddleware
from netra_resilience.engine._types import Engine, EventSink, EventType, RunRequest, RunStatus
from netra_resilience.engine._wrap import wrap_engine

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
