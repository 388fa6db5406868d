"""Starlette-style engine middleware: ``Middleware(cls, **options)``, each wrapping the next."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from netra_resilience.engine._types import Engine, EventType, RunRequest

if TYPE_CHECKING:
    from netra_resilience.engine._emitter import RunEvents


class Middleware:
    """A recipe for one layer: ``cls(app, **options)`` is built once per stack, not per run.

    Built once so that what a layer owns (a hook's breaker, a tool's rate limiter) is shared by
    every run and every user that goes through the stack.
    """

    __slots__ = ("cls", "options")

    def __init__(self, cls: Callable[..., Engine], /, **options: Any) -> None:
        if not callable(cls):
            raise TypeError(f"Middleware needs a class or factory, got {type(cls).__name__}")
        self.cls = cls
        self.options = options

    def build(self, app: Engine) -> Engine:
        return self.cls(app, **self.options)

    def __repr__(self) -> str:
        name = getattr(self.cls, "__name__", repr(self.cls))
        opts = ", ".join(f"{key}=..." for key in self.options)
        return f"Middleware({name}{', ' if opts else ''}{opts})"


class EngineMiddleware:
    """Optional base class: stores ``app`` and passes runs through; override ``__call__``.

    ``aclose()`` is called on every layer when the stack shuts down (drain queues there).
    """

    def __init__(self, app: Engine) -> None:
        self.app = app

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        return await self.app(request, events)

    async def aclose(self) -> None:
        return None


class Start:
    """The innermost layer: ``agent_started`` goes out once every middleware has set up
    (registered its hooks), right before the engine runs."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        started = events.emit_nowait(EventType.AGENT_STARTED, {})
        if started is not None:
            await events.observe(started)
        return await self.engine(request, events)


def build_stack(engine: Engine, middleware: Sequence[Middleware]) -> tuple[Engine, list[Engine]]:
    """Wrap ``engine`` in ``middleware`` (first = outermost); return the entry and the layers."""
    app = engine
    layers: list[Engine] = []
    for recipe in reversed(middleware):
        if not isinstance(recipe, Middleware):
            raise TypeError(f"expected Middleware(cls, **options), got {type(recipe).__name__}")
        app = recipe.build(app)
        layers.append(app)
    layers.reverse()
    return app, layers
