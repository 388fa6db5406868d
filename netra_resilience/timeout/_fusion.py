"""Deadline fusion: a total timeout enforced by the attempt timeout's single timer.

The standard stack is ``total timeout -> retry -> [breaker] -> attempt timeout``. Done naively
that is two asyncio timers per attempt (~2.4 µs each). When a pipeline has that shape, the
total timeout arms no timer of its own: for each call it publishes a :class:`Budget` (its
deadline) in a ContextVar, the retry never sleeps into that deadline, and the attempt timeout
arms one timer at ``min(attempt timeout, time left in the budget)``.

Why a ContextVar and not ``context.properties``: one :class:`ResilienceContext` often spans a
whole request, and an agent may run several calls of the same pipeline concurrently with it
(parallel tool calls). Properties are shared by those calls; a ContextVar binding is private to
the task that set it, and strategies run inline in the caller's task. Each budget also names
its owner, so a nested pipeline never enforces (or spends) another pipeline's budget.

Fusion is only sound when nothing between the two timeouts can wait without knowing the
deadline. A strategy declares that with the class (or instance) attribute ``may_block``:

* ``may_block = False``: it never waits (a breaker check, a timeout, a cache read that
  cannot hang would qualify);
* ``may_block = True`` or no attribute: it may queue or sleep (bulkhead, rate limiter with
  ``max_wait``, fallback actions) and fusion is refused across it.

A strategy of kind ``"circuit_breaker"`` without the attribute is treated as non-blocking; a
breaker that can wait for a half-open slot should declare ``may_block = True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from netra_resilience.exceptions import TimeoutRejectedError

__all__ = ["DEADLINE", "Budget", "is_non_blocking"]


class Budget:
    """One call's total deadline, published by a fused total timeout for its partners."""

    __slots__ = ("deadline", "error", "name", "owner", "timeout")

    def __init__(self, owner: object, deadline: float, timeout: float, name: str) -> None:
        self.owner = owner
        self.deadline = deadline  # in the pipeline clock's monotonic() time
        self.timeout = timeout
        self.name = name
        self.error: TimeoutRejectedError | None = None

    def expire(self, cause: BaseException | None = None) -> TimeoutRejectedError:
        """Record that the budget is spent; return the (fresh) error the call ends with.

        The total timeout recognises this very object in the final outcome and then marks
        the degradation and reports the timeout, exactly as if its own timer had fired.
        """
        error = TimeoutRejectedError(
            f"total timeout of {self.timeout:g}s expired",
            timeout=self.timeout,
            dependency=self.name,
        )
        if cause is not None:
            error.__cause__ = cause
        self.error = error
        return error


DEADLINE: ContextVar[Budget | None] = ContextVar("netra_resilience_deadline", default=None)
"""The budget of the innermost fused total timeout running in this task (None outside)."""


def is_non_blocking(strategy: Any) -> bool:
    """True when ``strategy`` declares that it never waits (see the module docstring)."""
    flag = getattr(strategy, "may_block", None)
    if flag is None:
        return getattr(strategy, "kind", None) == "circuit_breaker"
    return flag is False


def find_partners(position: int, strategies: Sequence[Any], retry_type: type) -> tuple[Any, Any]:
    """Find ``(retry, attempt timeout)`` inside the timeout at ``position``, or ``(None, None)``.

    The shape must be: non-blocking strategies, exactly one retry, non-blocking strategies, a
    timeout. Anything else (a second retry, a blocking strategy, no inner timeout) means no
    fusion, and every timeout then simply arms its own timer.
    """
    retry = None
    for strategy in strategies[position + 1 :]:
        if isinstance(strategy, retry_type):
            if retry is not None:
                return None, None
            retry = strategy
        elif getattr(strategy, "kind", None) == "timeout":
            return (retry, strategy) if retry is not None else (None, None)
        elif not is_non_blocking(strategy):
            return None, None
    return None, None
