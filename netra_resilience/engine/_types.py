"""The engine protocol: a run request in, events out through a sink, an answer back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from netra_resilience.engine._emitter import RunEvents
    from netra_resilience.engine._run_tools import RunTools

EventSink = Callable[[dict[str, Any]], Awaitable[None]]
"""Where a run's events go, e.g. ``websocket.send_json``. Receives one JSON-ready dict per event."""


class EventType(StrEnum):
    """The five agent events, plus the notice sent when a run first degrades."""

    AGENT_STARTED = "agent_started"
    AGENT_THINKING = "agent_thinking"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_COMPLETED = "agent_completed"
    AGENT_DEGRADED = "agent_degraded"


class RunStatus(StrEnum):
    """The ``status`` of the final ``agent_completed`` event."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


def _run_id() -> str:
    return uuid.uuid4().hex


def _no_tools() -> RunTools:
    from netra_resilience.engine._run_tools import RunTools

    return RunTools({}, None)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One agent run: the user's input and who asked.

    ``tools`` is filled in by :class:`~netra_resilience.engine.ToolsMiddleware`; an engine calls
    ``await request.tools.call("search", query=...)`` and gets a typed result back (without
    that middleware every name is an unknown tool).
    """

    input: Any = None
    user_id: str | None = field(default=None, kw_only=True)
    tenant_id: str | None = field(default=None, kw_only=True)
    run_id: str = field(default_factory=_run_id, kw_only=True)
    metadata: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    tools: RunTools = field(default_factory=_no_tools, kw_only=True, repr=False, compare=False)

    def with_tools(self, tools: RunTools) -> RunRequest:
        return replace(self, tools=tools)


class Engine(Protocol):
    """What users write and what every middleware is: ``await engine(request, events)``.

    A plain ``async def engine(request, events)`` satisfies it, and so does an object with an
    ``async def __call__(self, request, events)``.
    """

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any: ...


EngineFn = Callable[[RunRequest, "RunEvents"], Awaitable[Any]]
"""The callable form of :class:`Engine` (what ``wrap_engine`` accepts)."""
