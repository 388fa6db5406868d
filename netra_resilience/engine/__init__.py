"""Agent engine middleware: wrap your engine so its runs survive failing dependencies.

``wrap_engine(engine, hooks=..., tools=...)`` gives every run a bound context, ordered events
(``agent_started`` ... ``agent_completed``, always a final one), hooks behind breakers and
tools behind their own pipelines. See ``examples/engine_quickstart.py``.
"""

from ._delivery import DeliveryStats
from ._emitter import EventObserver, RunEvents
from ._hook_queue import HookQueue
from ._hooks import Hook, HookFn
from ._hooks_middleware import HooksMiddleware
from ._middleware import EngineMiddleware, Middleware
from ._options import EventOptions
from ._result import RunResult
from ._run_tools import RunTools
from ._runner import ResilientEngine
from ._tool_result import ToolError, ToolErrorReason, ToolOk, ToolResult
from ._tools import Tool, ToolFn
from ._tools_middleware import ToolsMiddleware
from ._types import Engine, EventSink, EventType, RunRequest, RunStatus
from ._wrap import wrap_engine

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
