"""``FallbackOptions`` and ``FallbackArgs``: what to answer instead when a call fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netra_resilience._validation import callable_or_none
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION

if TYPE_CHECKING:
    from netra_resilience.fallback._strategy import FallbackStrategy
    from netra_resilience.strategy import BuildContext

_OWNER = "FallbackOptions"


@dataclass(frozen=True, slots=True)
class FallbackArgs:
    """What a fallback action sees: the failed outcome, the context and the call's arguments.

    ``args``/``kwargs`` are the arguments of the user's call, so an action can compute the same
    cache key as a cache strategy and serve a stale answer (see ``CacheStrategy.lookup_stale``).
    """

    outcome: Outcome[Any]
    context: ResilienceContext
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


FallbackAction = Callable[[FallbackArgs], Any]
"""``action(args) -> value | Awaitable[value] | Outcome``; what it raises becomes the outcome."""

OnFallback = Callable[[FallbackArgs], Awaitable[None] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackOptions:
    """Answer with ``action(args)`` when ``should_handle(outcome)`` says the call failed.

    * ``action`` may be sync or async (decided once, at build time) and may return a plain
      value, an awaitable, or an :class:`Outcome` (return ``args.outcome`` to decline).
    * ``reason`` is the degradation flag set for the pipeline's dependency, but only when the
      action actually produced a successful outcome; if the action marked the same dependency
      itself (e.g. ``stale_cache``), its more specific mark is kept.
    * ``on_fallback`` runs before the action; its errors are swallowed.
    """

    action: FallbackAction
    should_handle: Callable[[Outcome[Any]], bool] = ANY_EXCEPTION
    reason: str = DegradationReason.FALLBACK
    on_fallback: OnFallback | None = None

    def __post_init__(self) -> None:
        if not callable(self.action):
            raise InvalidOptionsError(
                _OWNER, "action", f"must be callable, got {type(self.action).__name__}"
            )
        if not callable(self.should_handle):
            raise InvalidOptionsError(_OWNER, "should_handle", "must be callable")
        if not isinstance(self.reason, str) or not self.reason:
            raise InvalidOptionsError(_OWNER, "reason", "must be a non-empty string")
        callable_or_none(_OWNER, "on_fallback", self.on_fallback)

    def create_strategy(self, build: BuildContext) -> FallbackStrategy:
        from netra_resilience.fallback._strategy import FallbackStrategy

        return FallbackStrategy(self, build)
