"""``ResilienceContext``: what one execution carries, and the ContextVar that reaches it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from netra_resilience.degradation import Degradation


class ResilienceContext:
    """Per-execution context: operation key, caller scope, properties, degradation.

    One context usually spans a whole request or agent run, so every pipeline called inside it
    marks the same :class:`Degradation`. ``user_id`` / ``tenant_id`` form the caller scope that
    caches use to keep one user's answers from another's.
    """

    __slots__ = ("_degradation", "_properties", "operation_key", "run_id", "tenant_id", "user_id")

    def __init__(
        self,
        operation_key: str = "",
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        run_id: str | None = None,
        degradation: Degradation | None = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        self.operation_key = operation_key
        self.user_id = user_id
        self.tenant_id = tenant_id
        self.run_id = run_id
        # Created on first use: most calls never degrade, and a context is made per call
        # when none is bound, so this keeps the success path free of four allocations.
        self._degradation = degradation
        self._properties = properties

    @property
    def degradation(self) -> Degradation:
        d = self._degradation
        if d is None:
            d = self._degradation = Degradation()
        return d

    @property
    def properties(self) -> dict[str, Any]:
        """Values a caller hands to strategies for this execution (e.g. a weighted permit
        count read by a rate limiter's ``permits``); shared with child contexts."""
        p = self._properties
        if p is None:
            p = self._properties = {}
        return p

    @property
    def degraded(self) -> bool:
        """True when something marked the degradation (without creating one)."""
        return self._degradation is not None and bool(self._degradation)

    @property
    def scope(self) -> str:
        """The caller scope (``<len>:tenant/user``), empty when anonymous.

        The tenant's length prefix keeps ids containing ``/`` from colliding (tenant ``a/b`` +
        user ``c`` vs tenant ``a`` + user ``b/c``): caches and limiters partition on this.
        """
        if self.tenant_id is None and self.user_id is None:
            return ""
        tenant = self.tenant_id or ""
        return f"{len(tenant)}:{tenant}/{self.user_id or ''}"

    def child(self, operation_key: str) -> ResilienceContext:
        """A context for a nested operation sharing scope, properties and degradation."""
        return ResilienceContext(
            operation_key,
            user_id=self.user_id,
            tenant_id=self.tenant_id,
            run_id=self.run_id,
            degradation=self.degradation,
            properties=self.properties,
        )

    def __repr__(self) -> str:
        return (
            f"ResilienceContext(operation_key={self.operation_key!r}, run_id={self.run_id!r}, "
            f"degradation={self.degradation!r})"
        )


# The one ContextVar of the library. It holds no shared state of its own: each request/run
# binds its own context, and asyncio copies the binding into the tasks it starts.
_current: ContextVar[ResilienceContext | None] = ContextVar(
    "netra_resilience_context", default=None
)


def current_context() -> ResilienceContext | None:
    """The context bound to the running request/run, if any."""
    return _current.get()


def current_degradation() -> Degradation | None:
    ctx = _current.get()
    return ctx.degradation if ctx is not None else None


@contextmanager
def use_context(context: ResilienceContext) -> Iterator[ResilienceContext]:
    """Bind ``context`` as the current one for the duration of the ``with`` block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


# The ContextVar's own methods, not wrappers: the middleware binds once per request, and a
# Python frame around each call was a measurable part of its cost under a server.
bind_context: Callable[[ResilienceContext], Token[ResilienceContext | None]] = _current.set
"""Bind without a ``with`` block; pass the returned token to :func:`unbind_context`."""
unbind_context: Callable[[Token[ResilienceContext | None]], None] = _current.reset
"""Restore the binding ``bind_context`` replaced."""
