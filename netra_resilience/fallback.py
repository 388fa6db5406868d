"""Fallback: replace a handled outcome with the result of an action, and mark the degradation.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

from netra_resilience.cache import call_arguments
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason, safe_token
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION, ShouldHandle, as_predicate
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import callable_or_none, set_field

if TYPE_CHECKING:
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
    should_handle: ShouldHandle = ANY_EXCEPTION
    reason: str = DegradationReason.FALLBACK
    on_fallback: OnFallback | None = None

    def __post_init__(self) -> None:
        if not callable(self.action):
            raise InvalidOptionsError(
                _OWNER, "action", f"must be callable, got {type(self.action).__name__}"
            )
        set_field(self, "should_handle", as_predicate(_OWNER, "should_handle", self.should_handle))
        if not isinstance(self.reason, str) or not self.reason:
            raise InvalidOptionsError(_OWNER, "reason", "must be a non-empty string")
        callable_or_none(_OWNER, "on_fallback", self.on_fallback)

    def create_strategy(self, build: BuildContext) -> FallbackStrategy:

        return FallbackStrategy(self, build)


class FallbackStrategy(Strategy):
    """Runs the call; on a handled outcome, runs the fallback action instead (Polly's order).

    ``CancelledError`` is never a handled outcome: it propagates from the callback untouched.
    """

    __slots__ = (
        "_action",
        "_dependency",
        "_is_async",
        "_name",
        "_on_fallback",
        "_reason",
        "_should_handle",
        "_telemetry",
    )

    kind: ClassVar[str] = "fallback"

    def __init__(self, options: FallbackOptions, build: BuildContext) -> None:
        self._action = options.action
        self._is_async = inspect.iscoroutinefunction(options.action)
        self._should_handle = cast("Callable[[Outcome[Any]], bool]", options.should_handle)
        self._reason = options.reason
        self._on_fallback = options.on_fallback
        self._name = build.name
        self._dependency = safe_token(build.name)
        self._telemetry = build.telemetry(self.kind)

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        outcome = await callback(context, state)
        if not self._should_handle(outcome):
            return outcome
        return await self._fall_back(outcome, context, state)

    async def _fall_back(
        self, outcome: Outcome[Any], context: ResilienceContext, state: Any
    ) -> Outcome[Any]:

        call_args, call_kwargs = call_arguments(state)
        args = FallbackArgs(outcome, context, call_args, call_kwargs)
        original = outcome.exception
        if self._telemetry.enabled:
            self._telemetry.emit(
                "fallback",
                Severity.WARNING,
                context.operation_key,
                reason=self._reason,
                error_type=type(original).__name__ if original is not None else None,
            )
        if self._on_fallback is not None:
            await _run_hook(self._on_fallback, args)
        marks_before = len(context.degradation.history)
        try:
            if self._is_async:
                value = await self._action(args)
            else:
                value = self._action(args)
                if inspect.isawaitable(value):
                    value = await value
        except Exception as exc:
            # The fallback's own failure becomes the outcome; keep the original reachable.
            if original is not None and exc is not original and exc.__context__ is None:
                exc.__context__ = original
            if self._telemetry.enabled:
                self._telemetry.emit(
                    "fallback_failed",
                    Severity.ERROR,
                    context.operation_key,
                    error_type=type(exc).__name__,
                )
            return Outcome(None, exc)
        result: Outcome[Any] = value if isinstance(value, Outcome) else Outcome(value)
        if result is not outcome and result.exception is None:
            self._mark(context, marks_before)
        return result

    def _mark(self, context: ResilienceContext, marks_before: int) -> None:
        degradation = context.degradation
        history = degradation.history
        # An action that already said why (e.g. it served a stale cache entry) keeps its mark.
        if any(entry.dependency == self._dependency for entry in history[marks_before:]):
            return
        degradation.mark(self._name, self._reason)


async def _run_hook(hook: Any, args: FallbackArgs) -> None:
    try:
        value = hook(args)
        if inspect.isawaitable(value):
            await value
    except Exception:  # an observer must never change the answer
        return

__all__ = ['FallbackAction', 'FallbackArgs', 'FallbackOptions', 'FallbackStrategy', 'OnFallback']
