"""``RunTools``: one run's handle on the tools; failures come back as values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netra_resilience.degradation import DegradationReason
from netra_resilience.engine._emitter import RunEvents
from netra_resilience.engine._tool_result import ToolError, ToolOk, ToolResult
from netra_resilience.engine._types import EventType
from netra_resilience.exceptions import ExecutionRejectedError

if TYPE_CHECKING:
    from netra_resilience.engine._tools_middleware import RegisteredTool


class RunTools:
    """One run's tools: ``await request.tools.call("search", query="...")`` -> ToolResult.

    Emits ``tool_executing`` and ``tool_completed`` around each call. Never raises for a
    failed, rejected or unknown tool: the agent gets a :class:`ToolError` to reason about.
    """

    __slots__ = ("_calls", "_events", "_tools")

    def __init__(self, tools: Mapping[str, RegisteredTool], events: RunEvents | None) -> None:
        self._tools = tools
        self._events = events
        self._calls = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def call(self, name: str, /, *args: Any, **kwargs: Any) -> ToolResult:
        """Call tool ``name`` with ``args``/``kwargs`` (a kwarg named ``context`` is reserved)."""
        self._calls += 1
        call_id = f"{name}-{self._calls}"
        events = self._events
        if events is not None:
            await events(EventType.TOOL_EXECUTING, tool=name, call_id=call_id)
        entry = self._tools.get(name)
        result: ToolResult
        if entry is None or events is None:
            result = ToolError.unknown(name, call_id)
        else:
            context = events.context
            outcome = await entry.pipeline.execute_outcome(
                entry.tool.fn, *args, context=context, **kwargs
            )
            if outcome.exception is None:
                result = ToolOk(name, outcome.result, call_id)
            else:
                if not isinstance(outcome.exception, ExecutionRejectedError):
                    context.degradation.mark(name, DegradationReason.ERROR)
                result = ToolError.from_outcome(name, outcome, call_id)
        if events is not None:
            data: dict[str, Any] = {"tool": name, "call_id": call_id, "ok": result.ok}
            if isinstance(result, ToolError):
                data["error"] = result.reason.value
                if result.retry_after is not None:
                    data["retry_after"] = round(result.retry_after, 3)
            await events(EventType.TOOL_COMPLETED, **data)
        return result
