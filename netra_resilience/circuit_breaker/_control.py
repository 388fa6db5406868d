"""``CircuitBreakerControl``: isolate or close many breakers at once, by hand."""

from __future__ import annotations

import weakref
from typing import Protocol


class _Manual(Protocol):
    async def isolate(self) -> None: ...
    async def close(self) -> None: ...


class CircuitBreakerControl:
    """An application-owned switch for every breaker built with it (Polly's manual control).

    ``await control.isolate()`` puts them all in ``ISOLATED`` (calls fail fast with
    :class:`~netra_resilience.IsolatedCircuitError`) until ``await control.close()``, which
    closes them and resets their counts. A breaker built while the control is isolated starts
    isolated; ``CircuitBreakerControl(isolated=True)`` starts that way (e.g. a maintenance
    window known at startup). Breakers are held weakly: a dropped pipeline is not kept alive.
    """

    __slots__ = ("__weakref__", "_breakers", "_isolated")

    def __init__(self, *, isolated: bool = False) -> None:
        self._isolated = bool(isolated)
        self._breakers: weakref.WeakSet[_Manual] = weakref.WeakSet()

    @property
    def is_isolated(self) -> bool:
        return self._isolated

    def __len__(self) -> int:
        return len(self._breakers)

    def _register(self, breaker: _Manual) -> bool:
        """Called when a breaker is built; returns whether it must start isolated."""
        self._breakers.add(breaker)
        return self._isolated

    async def isolate(self) -> None:
        """Isolate every breaker; new ones start isolated until :meth:`close`."""
        self._isolated = True
        await self._each("isolate")

    async def close(self) -> None:
        """Close every breaker and reset its counts."""
        self._isolated = False
        await self._each("close")

    async def _each(self, action: str) -> None:
        # Every breaker gets the command even if one (say, with an unreachable shared store)
        # fails; the failures are raised together afterwards.
        errors: list[Exception] = []
        for breaker in list(self._breakers):
            try:
                await getattr(breaker, action)()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup(f"CircuitBreakerControl.{action}() failed for some", errors)
