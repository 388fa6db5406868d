"""``wrap_engine``: the whole stack with sensible defaults, as a call or a decorator."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import overload

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.engine._hooks import Hook, HookFn
from netra_resilience.engine._hooks_middleware import HooksMiddleware
from netra_resilience.engine._middleware import Middleware
from netra_resilience.engine._options import EventOptions
from netra_resilience.engine._runner import ResilientEngine
from netra_resilience.engine._tools import Tool, ToolFn
from netra_resilience.engine._tools_middleware import ToolsMiddleware
from netra_resilience.engine._types import Engine
from netra_resilience.telemetry import TelemetryListener


@overload
def wrap_engine(
    engine: Engine,
    /,
    *,
    hooks: Mapping[str, HookFn] | Collection[Hook] = ...,
    tools: Mapping[str, ToolFn] | Collection[Tool] = ...,
    middleware: Sequence[Middleware] = ...,
    events: EventOptions | None = ...,
    clock: Clock | None = ...,
    random: Callable[[], float] | None = ...,
    telemetry: TelemetryListener | None = ...,
    hook_queue_size: int = ...,
) -> ResilientEngine: ...


@overload
def wrap_engine(
    engine: None = None,
    /,
    *,
    hooks: Mapping[str, HookFn] | Collection[Hook] = ...,
    tools: Mapping[str, ToolFn] | Collection[Tool] = ...,
    middleware: Sequence[Middleware] = ...,
    events: EventOptions | None = ...,
    clock: Clock | None = ...,
    random: Callable[[], float] | None = ...,
    telemetry: TelemetryListener | None = ...,
    hook_queue_size: int = ...,
) -> Callable[[Engine], ResilientEngine]: ...


def wrap_engine(
    engine: Engine | None = None,
    /,
    *,
    hooks: Mapping[str, HookFn] | Collection[Hook] = (),
    tools: Mapping[str, ToolFn] | Collection[Tool] = (),
    middleware: Sequence[Middleware] = (),
    events: EventOptions | None = None,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
    telemetry: TelemetryListener | None = None,
    hook_queue_size: int = 1000,
) -> ResilientEngine | Callable[[Engine], ResilientEngine]:
    """Wrap ``engine`` (a plain ``async def`` or an object with ``async __call__``).

    ``hooks``/``tools`` take ``{"name": fn}`` for defaults or ``Hook``/``Tool`` objects to
    tune them; ``middleware`` adds your own layers inside hooks and tools (they see
    ``request.tools``). Without ``engine`` it returns a decorator::

        @wrap_engine(hooks={"analytics": send_analytics}, tools={"search": search})
        async def agent(request, events): ...
    """
    the_clock = clock or SYSTEM_CLOCK
    stack = [
        Middleware(
            HooksMiddleware,
            hooks=hooks,
            clock=the_clock,
            queue_size=hook_queue_size,
            telemetry=telemetry,
        ),
        Middleware(
            ToolsMiddleware, tools=tools, clock=the_clock, random=random, telemetry=telemetry
        ),
        *middleware,
    ]

    def wrap(target: Engine) -> ResilientEngine:
        return ResilientEngine(target, middleware=stack, events=events, clock=the_clock)

    return wrap if engine is None else wrap(engine)
