"""``FallbackStrategy``: replace a handled failure with the action's answer."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from netra_resilience.cache._keys import call_arguments
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import safe_token
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity

if TYPE_CHECKING:
    from netra_resilience.fallback._options import FallbackArgs, FallbackOptions


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
        self._should_handle = options.should_handle
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
        from netra_resilience.fallback._options import FallbackArgs

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
