"""Timeout: only its own expiry becomes ``TimeoutRejectedError``; a caller's cancel stays
``CancelledError``. One timer per attempt, fused with a total deadline where the shape allows.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from netra_resilience.clock import Clock, SystemClock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError, TimeoutRejectedError
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import (
        Seconds,
        callable_or_none,
        optional_duration,
        set_field,
        to_seconds,
)

if TYPE_CHECKING:
        from netra_resilience.strategy import BuildContext


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


def find_partners(position: int, strategies: Sequence[Any]) -> tuple[Any, Any]:
    """Find ``(retry, attempt timeout)`` inside the timeout at ``position``, or ``(None, None)``.

    The shape must be: non-blocking strategies, exactly one retry, non-blocking strategies, a
    timeout. Anything else (a second retry, a blocking strategy, no inner timeout) means no
    fusion, and every timeout then simply arms its own timer.
    """
    retry = None
    for strategy in strategies[position + 1 :]:
        if getattr(strategy, "kind", None) == "retry":
            if retry is not None:
                return None, None
            retry = strategy
        elif getattr(strategy, "kind", None) == "timeout":
            return (retry, strategy) if retry is not None else (None, None)
        elif not is_non_blocking(strategy):
            return None, None
    return None, None


async def run_with_clock(
    clock: Clock, seconds: float, callback: Callback, context: ResilienceContext, state: Any
) -> Outcome[Any] | None:
    try:
        async with clock.timeout(seconds):
            return await callback(context, state)
    except TimeoutError:
        # The callback returns outcomes and never raises Exception subclasses, so a
        # TimeoutError here can only come from the timeout itself (its own expiry).
        return None


class _Expiry:
    """The timer callback: remembers that it fired, then cancels the task."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


async def run_with_loop_timer(
    clock: Clock | None, seconds: float, callback: Callback, context: ResilienceContext, state: Any
) -> Outcome[Any] | None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a timeout must run inside an asyncio task")
    cancelling = task.cancelling()
    expiry = _Expiry(task)
    handle = loop.call_at(loop.time() + seconds, expiry)
    try:
        outcome = await callback(context, state)
    except asyncio.CancelledError:
        if expiry.fired and task.uncancel() <= cancelling:
            return None  # only our timer asked for this cancellation: it is our expiry
        raise
    except BaseException:
        if expiry.fired:
            task.uncancel()
        raise
    finally:
        handle.cancel()
    if expiry.fired:
        # The callback swallowed our cancellation and finished anyway: keep its result, but
        # take our cancel request back so the task's count stays balanced.
        task.uncancel()
    return outcome


# asyncio runs a handle when loop.time() is within its clock resolution of the deadline
# (BaseEventLoop._clock_resolution); treat entries that close as due, or the timer would
# re-arm for the same instant until the clock ticks over.
_EPSILON = max(1e-6, time.get_clock_info("monotonic").resolution)


class _Entry:
    __slots__ = ("deadline", "done", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False
        self.done = False


class DeadlineQueue:
    """In-order deadlines of one event loop, served by a single loop timer."""

    __slots__ = ("_armed", "_armed_at", "_entries", "loop", "monotonic_time")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The stdlib loop's time() is time.monotonic(): a caller holding a fresh reading of
        # it may skip the loop.time() call (uvloop's cached time is another clock).
        self.monotonic_time = getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time
        self._entries: deque[_Entry] = deque()
        self._armed = False
        self._armed_at = 0.0  # when the armed timer fires (meaningful while _armed)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, task: asyncio.Task[Any], deadline: float) -> _Entry | None:
        """Queue a deadline; ``None`` if it is earlier than the newest (caller arms its own)."""
        entries = self._entries
        if entries and deadline < entries[-1].deadline:
            return None
        if self._armed and deadline < self._armed_at:
            return None  # empty queue, timer still armed for later: it would fire too late
        entry = _Entry(task, deadline)
        entries.append(entry)
        if not self._armed:
            self._armed = True
            self._armed_at = deadline
            self.loop.call_at(deadline, self._fire)
        return entry

    def release(self, entry: _Entry) -> None:
        """The call finished: drop it and every finished entry at the head."""
        entry.done = True
        entries = self._entries
        while entries and entries[0].done:
            entries.popleft()
        # The armed timer is left alone: when it fires it finds nothing due and re-arms for the
        # head (or stays off when empty), so back-to-back calls never cancel and re-arm it.

    def _fire(self) -> None:
        now = self.loop.time() + _EPSILON
        entries = self._entries
        while entries:
            head = entries[0]
            if head.done:
                entries.popleft()
            elif head.deadline <= now:
                entries.popleft()
                head.fired = True
                head.task.cancel()
            else:
                self._armed_at = head.deadline
                self.loop.call_at(head.deadline, self._fire)
                return
        self._armed = False


async def run_with_deadline_queue(
    queue: DeadlineQueue,
    seconds: float,
    callback: Callback,
    context: ResilienceContext,
    state: Any,
) -> Outcome[Any] | None:
    """Like ``run_with_loop_timer`` (``None`` = our expiry), on the shared queue's timer."""
    loop = queue.loop
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a timeout must run inside an asyncio task")
    entry = queue.add(task, loop.time() + seconds)
    if entry is None:  # out of order (a shorter per-call duration): one timer of its own
        return await run_with_loop_timer(None, seconds, callback, context, state)
    cancelling = task.cancelling()
    try:
        outcome = await callback(context, state)
    except asyncio.CancelledError:
        if entry.fired and task.uncancel() <= cancelling:
            return None  # only our timer asked for this cancellation: it is our expiry
        raise
    except BaseException:
        if entry.fired:
            task.uncancel()
        raise
    finally:
        queue.release(entry)
    if entry.fired:  # the callback swallowed our cancel and finished: keep its result
        task.uncancel()
    return outcome


_OWNER = "TimeoutOptions"


def per_call_timeout(value: Seconds | None) -> float | None:
    """A generator's answer: ``None``, zero, negative, NaN or infinite disables the timeout."""
    if value is None:
        return None
    seconds = to_seconds(value)
    return seconds if 0 < seconds < math.inf else None


@dataclass(frozen=True, slots=True)
class OnTimeoutArgs:
    """What ``on_timeout`` receives when this strategy's own deadline expired."""

    context: ResilienceContext
    timeout: float


TimeoutGenerator = Callable[[ResilienceContext], "Seconds | None"]
OnTimeout = Callable[[OnTimeoutArgs], "Awaitable[Any] | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutOptions:
    """Cancel the rest of the pipeline when it runs longer than ``timeout`` seconds.

    * ``timeout``: seconds (or ``timedelta``), ``> 0``; ``None`` disables the timeout.
    * ``timeout_generator(context)``: a per-call timeout that replaces ``timeout``; ``None``,
      zero or a negative value disables it for that call (as Polly's ``TimeoutGenerator``).
    * ``on_timeout(OnTimeoutArgs)``: sync or async hook, called on our own expiry only.

    Only this strategy's own expiry becomes :class:`TimeoutRejectedError` (and marks the
    degradation ``timeout``); a caller's cancel stays ``CancelledError``. A total timeout
    placed outside a retry whose attempts have their own timeout is *fused* with it: one timer
    per attempt enforces both (see ``netra_resilience.timeout``).
    """

    timeout: Seconds | None = 30.0
    timeout_generator: TimeoutGenerator | None = None
    on_timeout: OnTimeout | None = None

    def __post_init__(self) -> None:
        seconds = optional_duration(_OWNER, "timeout", self.timeout)
        if seconds is not None and math.isinf(seconds):
            raise InvalidOptionsError(_OWNER, "timeout", "must be finite (None disables it)")
        set_field(self, "timeout", seconds)
        callable_or_none(_OWNER, "timeout_generator", self.timeout_generator)
        callable_or_none(_OWNER, "on_timeout", self.on_timeout)

    def create_strategy(self, build: BuildContext) -> TimeoutStrategy:

        return TimeoutStrategy(self, build)


class TimeoutStrategy(Strategy):
    """Cancels the rest of the pipeline after a timeout. See :class:`TimeoutOptions`.

    Three roles, fixed when the pipeline is built:

    * plain: arms one timer per call;
    * *fused total* (outside a retry whose attempts have a timeout): arms nothing, publishes
      the call's deadline as a :class:`Budget` for its two partners;
    * *attempt timeout of a fused total*: arms one timer at ``min(attempt, time left)``; when
      the total is what runs out it ends the call with the total's error.
    """

    __slots__ = (
        "_builds",
        "_clock",
        "_fused",
        "_generator",
        "_name",
        "_now",
        "_on_timeout",
        "_on_timeout_async",
        "_owner",
        "_queue",
        "_run",
        "_shared_timer",
        "_telemetry",
        "_timeout",
    )

    kind: ClassVar[str] = "timeout"
    may_block: ClassVar[bool] = False

    def __init__(self, options: TimeoutOptions, build: BuildContext) -> None:
        self._timeout = None if options.timeout is None else to_seconds(options.timeout)
        self._generator = options.timeout_generator
        hook = options.on_timeout
        self._on_timeout = hook
        self._on_timeout_async = inspect.iscoroutinefunction(hook) or (
            inspect.iscoroutinefunction(getattr(hook, "__call__", None))  # noqa: B004
        )
        self._clock = build.clock
        self._name = build.name
        self._telemetry = build.telemetry(self.kind)
        # The cheap loop timer is only correct for the real clock; any other clock (FakeClock)
        # keeps its own timeout() so that it stays in control of time.
        system = type(build.clock) is SystemClock
        self._run = run_with_loop_timer if system else run_with_clock
        # A fixed duration on the real clock shares one loop timer across calls (_queue.py).
        self._queue: DeadlineQueue | None = None
        self._shared_timer = system and self._generator is None
        self._now = build.clock.monotonic  # bound once, not looked up per call
        self._fused = False
        self._owner: TimeoutStrategy | None = None
        self._builds = 0

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def fused(self) -> bool:
        """True when this total timeout leaves its timer to the attempt timeout inside it."""
        return self._fused

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        if self._generator is None:
            seconds = self._timeout
        else:
            try:
                seconds = per_call_timeout(self._generator(context))
            except Exception as exc:
                return Outcome(None, exc)

        if self._fused:  # total timeout: publish the deadline, arm nothing
            budget = None
            if seconds is not None:
                budget = Budget(self, self._now() + seconds, seconds, self._name)
            token = DEADLINE.set(budget)
            try:
                outcome = await callback(context, state)
            finally:
                DEADLINE.reset(token)
            error = None if budget is None else budget.error
            if error is not None and outcome.exception is error:
                return await self._report(context, error.timeout or 0.0, outcome)
            return outcome

        owner = self._owner
        if owner is not None:  # attempt timeout: also enforce the fused total's deadline
            budget = DEADLINE.get()
            if budget is not None and budget.owner is owner:
                remaining = budget.deadline - self._now()
                if remaining <= 0:
                    return Outcome(None, budget.expire())
                if seconds is None or remaining < seconds:
                    bounded = await self._run(self._clock, remaining, callback, context, state)
                    return Outcome(None, budget.expire()) if bounded is None else bounded

        if seconds is None:
            return await callback(context, state)
        if self._shared_timer:
            loop = asyncio.get_running_loop()
            queue = self._queue
            if queue is None or queue.loop is not loop:
                queue = self._queue = DeadlineQueue(loop)
            timed = await run_with_deadline_queue(queue, seconds, callback, context, state)
        else:
            timed = await self._run(self._clock, seconds, callback, context, state)
        if timed is None:
            error = TimeoutRejectedError(
                f"timed out after {seconds:g}s", timeout=seconds, dependency=self._name
            )
            return await self._report(context, seconds, Outcome(None, error))
        return timed

    async def _report(
        self, context: ResilienceContext, seconds: float, outcome: Outcome[Any]
    ) -> Outcome[Any]:
        """Our own expiry: mark the degradation, emit ``timeout``, run the hook."""
        context.degradation.mark(self._name, DegradationReason.TIMEOUT)
        telemetry = self._telemetry
        if telemetry.enabled:
            telemetry.emit("timeout", Severity.ERROR, context.operation_key, timeout=seconds)
        hook = self._on_timeout
        if hook is not None:
            try:  # like Polly: a failing hook fails the call, it is not silently dropped
                result = hook(OnTimeoutArgs(context, seconds))
                if self._on_timeout_async or inspect.isawaitable(result):
                    await result  # type: ignore[misc]
            except Exception as exc:
                return Outcome(None, exc)
        return outcome

    # -- build-time wiring ------------------------------------------------------------
    def on_pipeline_built(self, position: int, strategies: Sequence[Strategy]) -> None:
        self._builds += 1
        if self._builds > 1:
            # The same instance in a second pipeline: the shape we fused may no longer hold,
            # so fall back to plain timers (always correct).
            self._unfuse()
            if self._owner is not None:
                self._owner._unfuse()
            return
        if self._owner is not None or (self._timeout is None and self._generator is None):
            return
        # partners are found by kind: the retry module imports this one, not the reverse
        retry, inner = find_partners(position, strategies)
        if retry is None or not isinstance(inner, TimeoutStrategy):
            return
        if not (inner._builds == 0 and inner._owner is None and not inner._fused):
            return
        if not retry._bind_deadline(self):
            return
        inner._owner = self
        self._fused = True

    def _unfuse(self) -> None:
        # Partners keep pointing at us: they only act on budgets we publish, and we publish
        # none from now on (calls already running keep theirs and stay bounded).
        self._fused = False

    def __repr__(self) -> str:
        role = "total, fused" if self._fused else "attempt, fused" if self._owner else "plain"
        return f"TimeoutStrategy(timeout={self._timeout!r}, {role})"

__all__ = ['OnTimeoutArgs', 'TimeoutOptions', 'TimeoutStrategy']
