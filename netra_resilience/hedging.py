"""Hedging (Polly v8): start another attempt when the first is slow or fails; the first
acceptable outcome wins and every other attempt is cancelled and awaited.

Modes, by ``delay``: a positive delay is *latency* mode (hedge after that long without an
acceptable outcome), ``0`` is *parallel* mode (every attempt at once), ``None`` is *fallback*
mode (the next attempt only after the previous one failed). In every mode a handled failure
starts the next attempt at once. Only work that is safe to repeat is hedged: no effect scope
(a read such as an LLM completion, declared by adding hedging to its pipeline) or a
``read``/``idempotent`` one (:mod:`netra_resilience.effects`); ``unsafe`` work runs once.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from netra_resilience.admission import RetryBudget
from netra_resilience.cache import call_arguments
from netra_resilience.context import ResilienceContext
from netra_resilience.effects import current_effect_scope
from netra_resilience.exceptions import (
    ExecutionRejectedError,
    InvalidOptionsError,
    TimeoutRejectedError,
)
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import TRANSIENT_EXCEPTION, ShouldHandle, as_predicate
from netra_resilience.retry import close_discarded
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    integer,
    optional_duration,
    ratio,
    set_field,
    to_seconds,
)

_OWNER = "HedgingOptions"
_MIN_SAMPLES = 20  # latencies seen before a percentile delay replaces the fixed one


@dataclass(frozen=True, slots=True)
class OnHedgeArgs:
    """What ``on_hedge`` receives: the call's context and the attempt about to start (1 = the
    first hedge)."""

    context: ResilienceContext
    attempt: int


OnHedge = Callable[[OnHedgeArgs], Awaitable[None] | None]

HedgeTarget = Callable[
    [ResilienceContext, tuple[Any, ...], dict[str, Any]], Awaitable[Outcome[Any]]
]
"""``target(context, args, kwargs) -> Outcome``: what a hedge runs instead of the call itself,
with the call's arguments (another deployment or model; see ``alternate_hedge`` in
:mod:`netra_resilience.llm`). What it raises becomes its outcome."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgingOptions:
    """Options of the hedging strategy.

    * ``delay``: seconds before a hedge (``0``: parallel, ``None``: fallback mode).
    * ``delay_percentile``: e.g. ``0.97`` hedges after the 97th percentile of the latencies of
      the last ``window`` primaries that answered (``delay`` until 20 were seen): hedges go
      out for the slow tail plus about 3 % of the normal calls.
    * ``max_hedged_attempts``: attempts beyond the first (1-10, Polly's range).
    * ``should_handle``: outcomes that are not acceptable (default: exceptions but
      rejections); the last of them is returned when every attempt failed. A *hedge* refused
      by a strategy inside (shed by admission, an open breaker) is never acceptable: put
      hedging outside admission so each attempt takes its own seat.
    * ``budget``: a shared :class:`~netra_resilience.admission.RetryBudget`; each call
      deposits, each hedge spends, a denied hedge is not started (counted in ``denied``).
    * ``on_hedge(OnHedgeArgs)``: sync or async, before each hedge starts.
    * ``targets``: hedge ``n`` runs ``targets[n - 1]`` (the last one repeats) instead of the
      call itself; empty (the default): every hedge repeats the call.
    """

    delay: Seconds | None = 2.0
    delay_percentile: float | None = None
    window: int = 200
    max_hedged_attempts: int = 1
    should_handle: ShouldHandle = TRANSIENT_EXCEPTION
    budget: RetryBudget | None = None
    on_hedge: OnHedge | None = None
    targets: Sequence[HedgeTarget] = ()

    def __post_init__(self) -> None:
        set_field(self, "delay", optional_duration(_OWNER, "delay", self.delay, allow_zero=True))
        if self.delay_percentile is not None:
            ratio(_OWNER, "delay_percentile", self.delay_percentile)
            if self.delay is None or self.delay == 0:
                raise InvalidOptionsError(
                    _OWNER, "delay_percentile", "needs latency mode (a positive delay)"
                )
        integer(_OWNER, "window", self.window, minimum=_MIN_SAMPLES, maximum=10_000)
        integer(_OWNER, "max_hedged_attempts", self.max_hedged_attempts, maximum=10)
        set_field(self, "should_handle", as_predicate(_OWNER, "should_handle", self.should_handle))
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise InvalidOptionsError(_OWNER, "budget", "must be a RetryBudget")
        callable_or_none(_OWNER, "on_hedge", self.on_hedge)
        if not all(callable(t) for t in self.targets):
            raise InvalidOptionsError(_OWNER, "targets", "must be a sequence of callables")
        set_field(self, "targets", tuple(self.targets))

    def create_strategy(self, build: BuildContext) -> HedgingStrategy:
        return HedgingStrategy(self, build)


async def _run_target(target: HedgeTarget, context: ResilienceContext, state: Any) -> Outcome[Any]:
    args, kwargs = call_arguments(state)
    try:
        return await target(context, args, kwargs)
    except Exception as exc:
        return Outcome(None, exc)


def _refused(outcome: Outcome[Any]) -> bool:
    """A hedge that a limiter inside refused (shed, breaker open) never ran: not an answer."""
    exc = outcome.exception
    return isinstance(exc, ExecutionRejectedError) and not isinstance(exc, TimeoutRejectedError)


class HedgingStrategy(Strategy):
    """Runs attempts as tasks; the first acceptable outcome wins. See :class:`HedgingOptions`.

    Losers are cancelled and awaited in ``finally`` (also when the caller is cancelled), so no
    task, permit or timer outlives the call; a loser that succeeded meanwhile has its result
    closed. ``hedges`` and ``hedge_wins`` count hedges started and calls a hedge won.
    """

    __slots__ = (
        "_budget", "_clock", "_delay", "_handles", "_latencies", "_max", "_name", "_on_hedge",
        "_percentile", "_sorted", "_targets", "_telemetry", "hedge_wins", "hedges",
    )  # fmt: skip

    kind: ClassVar[str] = "hedging"
    may_block: ClassVar[bool] = True

    def __init__(self, options: HedgingOptions, build: BuildContext) -> None:
        self._delay = options.delay
        self._percentile = options.delay_percentile
        self._latencies: deque[float] = deque(maxlen=options.window)
        self._sorted: list[float] = []
        self._max = options.max_hedged_attempts
        self._handles = as_predicate(_OWNER, "should_handle", options.should_handle)
        self._budget = options.budget
        self._on_hedge = options.on_hedge
        self._targets = tuple(options.targets)
        self._clock = build.clock
        self._name = build.name
        self._telemetry = build.telemetry(self.kind)
        self.hedges = 0
        self.hedge_wins = 0

    def current_delay(self) -> float | None:
        """The delay the next call would hedge after."""
        if self._percentile is None or len(self._sorted) < _MIN_SAMPLES:
            return None if self._delay is None else to_seconds(self._delay)
        index = min(len(self._sorted) - 1, int(self._percentile * len(self._sorted)))
        return self._sorted[index]

    def _observe(self, latency: float) -> None:
        if self._percentile is None:
            return
        if len(self._latencies) == self._latencies.maxlen:
            oldest = self._latencies[0]
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._latencies.append(latency)
        bisect.insort(self._sorted, latency)

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        scope = current_effect_scope()
        if scope is not None and not scope.effect.allows_hedging:
            return await callback(context, state)  # unsafe to repeat: one attempt only
        if self._budget is not None:
            self._budget.deposit()
        clock = self._clock
        delay = self.current_delay()
        started = clock.monotonic()
        running: dict[asyncio.Future[Outcome[Any]], int] = {}
        launched = 0
        may_hedge = True
        last: Outcome[Any] | None = None

        def launch() -> None:
            nonlocal launched
            attempt: Awaitable[Outcome[Any]]
            if launched and self._targets:
                target = self._targets[min(launched, len(self._targets)) - 1]
                attempt = _run_target(target, context, state)
            else:
                attempt = callback(context, state)
            running[asyncio.ensure_future(attempt)] = launched
            launched += 1

        try:
            launch()
            while True:
                hedge_now = False
                if may_hedge and launched <= self._max and delay is not None:
                    done = await self._wait(running, delay if delay > 0 else 0.0)
                    hedge_now = not done
                else:
                    done = await self._wait(running, None)
                for task in done:
                    attempt = running.pop(task)
                    outcome = task.result()
                    try:
                        handled = self._handles(outcome) or (attempt > 0 and _refused(outcome))
                    except Exception as exc:
                        return Outcome(None, exc)
                    if not handled:
                        if attempt:
                            self.hedge_wins += 1
                        else:  # only a primary that answered: a hedged call's primary
                            # latency is unknown, and counting its lower bound would feed
                            # the delay back into itself
                            self._observe(clock.monotonic() - started)
                        return outcome
                    last = outcome
                    hedge_now = True  # a failure starts the next attempt at once (Polly)
                if hedge_now and may_hedge and launched <= self._max:
                    try:
                        may_hedge = await self._hedge(context, launched)
                    except Exception as exc:  # on_hedge failed: it ends the call (Polly)
                        return Outcome(None, exc)
                    if may_hedge:
                        launch()
                        continue
                if not running:
                    assert last is not None
                    return last
        finally:
            await self._cancel_losers(running, context)

    async def _wait(
        self, running: dict[asyncio.Future[Outcome[Any]], int], delay: float | None
    ) -> set[asyncio.Future[Outcome[Any]]]:
        """The attempts done within ``delay`` seconds (``None``: wait for one)."""
        if delay is None:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            return done
        if delay > 0:
            try:
                async with self._clock.timeout(delay):
                    done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    return done
            except TimeoutError:
                pass
        return {task for task in running if task.done()}

    async def _hedge(self, context: ResilienceContext, attempt: int) -> bool:
        """May hedge number ``attempt`` start? (The budget decides; ``on_hedge`` is told.)"""
        if self._budget is not None and not self._budget.try_spend():
            if self._telemetry.enabled:
                self._telemetry.emit(
                    "hedge_budget_exhausted", Severity.WARNING, context.operation_key,
                    attempt=attempt,
                )  # fmt: skip
            return False
        self.hedges += 1
        if self._telemetry.enabled:
            self._telemetry.emit("hedge", Severity.INFO, context.operation_key, attempt=attempt)
        if self._on_hedge is not None:
            result = self._on_hedge(OnHedgeArgs(context, attempt))
            if inspect.isawaitable(result):
                await result
        return True

    async def _cancel_losers(
        self, running: dict[asyncio.Future[Outcome[Any]], int], context: ResilienceContext
    ) -> None:
        if not running:
            return
        for task in running:
            task.cancel()
        results = await asyncio.gather(*running, return_exceptions=True)
        for (_, attempt), result in zip(running.items(), results, strict=True):
            if isinstance(result, Outcome):
                await close_discarded(result)  # finished before the cancel landed
            if self._telemetry.enabled:
                self._telemetry.emit(
                    "hedge_cancelled", Severity.DEBUG, context.operation_key, attempt=attempt
                )
        running.clear()


__all__ = ["HedgeTarget", "HedgingOptions", "HedgingStrategy", "OnHedgeArgs"]
