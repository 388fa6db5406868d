"""Fused execution: a pipeline made of the standard strategies, run as one coroutine.

The onion (a coroutine and an :class:`Outcome` per strategy) is the reference semantics and
stays the path for custom strategies and unusual shapes. :func:`fuse` recognises, once at
build time, pipelines whose strategies are, in this order and each at most once::

    rate limiter -> bulkhead -> total timeout -> retry -> circuit breaker -> timeout

(any subset, in the standard configurations listed in :func:`fuse`) and returns a runner that
does each strategy's common step inline in one frame: one clock read at the start of the
call, one timer per attempt, no ``Outcome`` on success, no ``ResilienceContext`` unless
something reads it. Whatever is not common (a limiter wait, a full bulkhead, an open or
half-open breaker, a failure to retry, a timeout's expiry) is handed to that strategy's own
code for the rest of the call, over the onion links after it, so the behaviour is the
onion's by construction.
"""

from __future__ import annotations

import asyncio
import functools
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from netra_resilience.bulkhead import BulkheadStrategy
from netra_resilience.circuit_breaker import CircuitBreakerStrategy, CircuitState
from netra_resilience.clock import Clock, SystemClock
from netra_resilience.context import ResilienceContext, _current
from netra_resilience.exceptions import TimeoutRejectedError
from netra_resilience.outcome import Outcome
from netra_resilience.rate_limiter import EPSILON, RateLimiterStrategy, TokenBucketLimiter
from netra_resilience.retry import RetryStrategy, _never_retried
from netra_resilience.strategy import Strategy
from netra_resilience.timeout import (
    DEADLINE,
    Budget,
    DeadlineQueue,
    TimeoutStrategy,
    run_with_loop_timer,
)

Runner = Callable[
    [
        Any,
        Callable[..., Awaitable[Any]],
        tuple[Any, ...],
        dict[str, Any],
        ResilienceContext | None,
        bool,
    ],
    Awaitable[Any],
]
"""``runner(pipeline, fn, args, kwargs, context, want_outcome)``: the outcome when
``want_outcome``, else the result (raising the call's exception). One runner serves every
pipeline of one build (each key of a ``KeyedPipelines``): what is stateful it reads from
``pipeline`` (``_limiter_s``, ``_limiter``, ``_bulkhead_s``, ``_seats``, ``_breaker_s``,
``_ctl``: see :func:`stateful_parts`; ``_step(i)``: the onion step after ``strategies[i]``,
``-1`` the first), the rest it closes over."""


def stateful_parts(strategies: Sequence[Strategy]) -> tuple[Any, Any, Any, Any, Any, Any]:
    """``(limiter strategy, limiter, bulkhead, its seats, breaker, its controller)`` of a
    pipeline's strategies, ``None`` where absent (what a fused runner reads per pipeline)."""
    limiter_s: RateLimiterStrategy | None = None
    bulkhead_s: BulkheadStrategy | None = None
    breaker_s: CircuitBreakerStrategy | None = None
    for strategy in strategies:
        if type(strategy) is RateLimiterStrategy:
            limiter_s = strategy
        elif type(strategy) is BulkheadStrategy:
            bulkhead_s = strategy
        elif type(strategy) is CircuitBreakerStrategy:
            breaker_s = strategy
    return (
        limiter_s,
        None if limiter_s is None else limiter_s._limiter,
        bulkhead_s,
        None if bulkhead_s is None else bulkhead_s._limiter,
        breaker_s,
        None if breaker_s is None else breaker_s._ctl,
    )


async def _invoke(context: ResilienceContext, state: Any) -> Outcome[Any]:
    fn, args, kwargs = state
    try:
        return Outcome(await fn(*args, **kwargs))
    except Exception as exc:
        return Outcome(None, exc)


def _roles(strategies: Sequence[Strategy]) -> list[tuple[int, Strategy]] | None:
    """``(role, strategy)`` in pipeline order, or ``None`` when the pipeline is not fusable.

    Roles: 0 limiter, 1 bulkhead, 2 fused total timeout, 3 retry, 4 breaker, 5 timeout.
    Exact types only: a subclass may override ``execute``.
    """
    roles: list[tuple[int, Strategy]] = []
    last = len(strategies) - 1
    for position, strategy in enumerate(strategies):
        if type(strategy) is RateLimiterStrategy:
            if not strategy._fast or strategy._hint_results:
                return None  # a per-call cost or partition, or a hint that reads results
            role = 0
        elif type(strategy) is BulkheadStrategy:
            role = 1
        elif type(strategy) is TimeoutStrategy:
            if strategy._generator is not None:
                return None
            if strategy.fused:
                role = 2
            elif position == last:
                role = 5
            else:
                return None
        elif type(strategy) is RetryStrategy:
            role = 3
        elif type(strategy) is CircuitBreakerStrategy:
            if strategy._ctl is None:
                return None
            role = 4
        else:
            return None
        if roles and roles[-1][0] >= role:
            return None
        roles.append((role, strategy))
    return roles


@dataclass(frozen=True, slots=True)
class Shape:
    """What the fused source depends on (one compiled code object per shape)."""

    limiter: bool
    limiter_hint: bool
    bucket: bool  # a TokenBucketLimiter: its free-permit step inline
    bucket_shares_clock: bool  # on the pipeline's clock: the call's one reading serves it
    bulkhead: bool
    total: bool
    retry: bool
    retry_results: bool
    retry_timed: bool
    retry_budget: bool
    breaker: bool
    breaker_plain: bool
    attempt: bool
    system: bool

    @property
    def reads_clock(self) -> bool:
        # The one clock read at the start: the total's deadline, retry timings, the timer.
        shared = self.bucket and self.bucket_shares_clock
        return self.total or self.retry_timed or (self.attempt and self.system) or shared


def fuse(name: str, clock: Clock, strategies: Sequence[Strategy]) -> Runner | None:
    """The fused runner of this pipeline, or ``None`` (keep the onion).

    The runner serves every pipeline whose strategies are built from the same options on the
    same clock, sharing the stateless ones (a ``KeyedPipelines``' keys).
    Fusable: a limiter with a fixed cost on one shared limiter whose pause hint reads
    exceptions only; any bulkhead; a total timeout fused with its retry's attempt timeout;
    any retry; a breaker with in-process state; a fixed innermost timeout. Timeout
    generators keep the onion.
    """
    roles = _roles(strategies)
    if roles is None or not strategies:
        return None
    by_role: dict[int, tuple[Strategy, int]] = {}
    for position, (role, strategy) in enumerate(roles):
        by_role[role] = (strategy, position)
    limiter_s = _get(by_role, 0, RateLimiterStrategy)
    bulkhead_s = _get(by_role, 1, BulkheadStrategy)
    total_s = _get(by_role, 2, TimeoutStrategy)
    retry_s = _get(by_role, 3, RetryStrategy)
    breaker_s = _get(by_role, 4, CircuitBreakerStrategy)
    attempt_s = _get(by_role, 5, TimeoutStrategy)
    if total_s is not None and (retry_s is None or attempt_s is None):
        return None  # a fused total's partners are both in this pipeline, or no fusion
    if attempt_s is not None and attempt_s._owner not in (None, total_s):
        return None
    retry = retry_s is not None and not retry_s._never
    limiter = None if limiter_s is None else limiter_s._limiter
    bucket = limiter if type(limiter) is TokenBucketLimiter else None
    shape = Shape(
        limiter=limiter_s is not None,
        limiter_hint=limiter_s is not None and limiter_s._hint is not None,
        bucket=bucket is not None,
        bucket_shares_clock=bucket is not None and bucket._clock is clock,
        bulkhead=bulkhead_s is not None,
        total=total_s is not None,
        retry=retry,
        retry_results=retry and not retry_s._exceptions_only,
        retry_timed=retry and retry_s._timed,
        retry_budget=retry and retry_s._budget is not None,
        breaker=breaker_s is not None,
        breaker_plain=breaker_s is not None and breaker_s._plain,
        attempt=attempt_s is not None and attempt_s._timeout is not None,
        system=type(clock) is SystemClock,
    )
    parts: dict[str, Any] = {
        "name": name,
        "clock": clock,
        "monotonic": clock.monotonic,
        "total_s": total_s,
        "retry_s": retry_s,
        "attempt_s": attempt_s,
    }
    if limiter_s is not None:
        parts.update(permits=limiter_s._permits, at_limiter=by_role[0][1])
    if bucket is not None:
        parts.update(burst_time=bucket._burst_time, cost=limiter_s._permits * bucket._interval)
    if bulkhead_s is not None:
        parts.update(at_bulkhead=by_role[1][1])
    if total_s is not None:
        parts.update(total=total_s._timeout)
    if retry_s is not None:
        parts.update(
            retry_should=retry_s._should_handle,
            retry_budget=retry_s._budget,
            at_retry=by_role[3][1],
        )
    if breaker_s is not None:
        parts.update(breaker_now=breaker_s._now, at_breaker=by_role[4][1])
    if attempt_s is not None:
        parts.update(attempt_seconds=attempt_s._timeout, at_attempt=by_role[5][1])
    runner: Runner = _maker_for(shape)(**parts)
    return runner


# Everything a runner closes over, by name (the maker's keyword parameters); ``at_x``: the
# position of strategy x (its onion step is ``p._step(at_x)``).
_PARTS = (
    "name", "clock", "monotonic", "total_s", "retry_s", "attempt_s", "permits", "at_limiter",
    "burst_time", "cost", "at_bulkhead", "total", "retry_should", "retry_budget", "at_retry",
    "breaker_now", "at_breaker", "attempt_seconds", "at_attempt",
)  # fmt: skip


@functools.cache  # a memo of a pure function: the code for a shape never changes
def _maker_for(shape: Shape) -> Callable[..., Runner]:
    """``make(**parts) -> run`` for ``shape``, compiled once: a pipeline's runner is then a
    closure over its parts (a few cells), not a module of its own."""
    body = "\n".join("    " + line if line else "" for line in _source(shape).splitlines())
    params = ", ".join(f"{part}=None" for part in _PARTS)
    source = f"def make(*, {params}):\n{body}\n    return run\n"
    namespace = dict(_SHARED)
    exec(compile(source, f"<netra fused pipeline {_describe(shape)}>", "exec"), namespace)
    maker: Callable[..., Runner] = namespace["make"]
    return maker


def _describe(shape: Shape) -> str:
    return ",".join(f.name for f in fields(shape) if getattr(shape, f.name))


class _Source:
    """Lines of generated Python at an indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, indent: int, text: str) -> None:
        for line in textwrap.dedent(text).strip("\n").splitlines():
            self.lines.append(" " * indent + line if line else "")


def _source(shape: Shape) -> str:
    """The fused coroutine for ``shape``: each strategy's common step inline, its own code
    (over the onion links after it) for everything else. Names come from the namespace."""
    out = _Source()
    out.add(
        0,
        """
        async def run(p, fn, args, kwargs, context, want_outcome):
            if context is not None and context is not _current_get():
                # Bind the context so code inside fn (a transport, a nested pipeline) sees it.
                token = _current_set(context)
                try:
                    return await run(p, fn, args, kwargs, context, want_outcome)
                finally:
                    _current_reset(token)
            # The context: the one given, else the bound one or a private one, looked up
            # (private: made) only when something reads it; ``None`` until then.
            ctx = context
            outcome = None  # None: the call succeeded with ``result``
            result = None
    """,
    )
    # The pipeline's own state (one per key), read once per call.
    if shape.limiter:
        out.add(4, "limiter = p._limiter")
    if shape.bulkhead:
        out.add(4, "seats = p._seats")
    if shape.breaker:
        out.add(4, "ctl = p._ctl")
    if shape.total:
        out.add(
            4,
            """
            if not total_s._fused:  # reused by another pipeline since: the onion decides
                onion = p._step(-1)
                ctx = ctx or _current_get() or _Context(name)
                return _finish(await onion(ctx, (fn, args, kwargs)), want_outcome)
        """,
        )
    if shape.reads_clock:
        out.add(4, "now = monotonic()")
    if shape.bucket:
        # TokenBucketLimiter.try_acquire's free-permit step (GCRA), inline.
        out.add(4, "moment = now" if shape.bucket_shares_clock else "moment = limiter._monotonic()")
        out.add(
            4,
            """
            base = limiter._empty_at
            floor = moment - burst_time
            if base < floor:
                base = floor
            taken = base + cost
            if taken <= moment + _EPSILON and not limiter._waiters:
                limiter._empty_at = taken
            else:
                ctx = ctx or _current_get() or _Context(name)
                rest = p._step(at_limiter)
                outcome = await p._limiter_s._execute_slow(rest, ctx, (fn, args, kwargs))
                return _finish(outcome, want_outcome)
        """,
        )
    elif shape.limiter:
        out.add(
            4,
            """
            try:
                taken = limiter.try_acquire(permits) == 0.0
            except Exception as exc:
                return _finish(_Outcome(None, exc), want_outcome)
            if not taken:
                ctx = ctx or _current_get() or _Context(name)
                rest = p._step(at_limiter)
                outcome = await p._limiter_s._execute_slow(rest, ctx, (fn, args, kwargs))
                return _finish(outcome, want_outcome)
        """,
        )
    if shape.bulkhead:
        out.add(
            4,
            """
            if seats.try_acquire():
                try:
        """,
        )
        _call(out, 12, shape)
        out.add(
            4,
            """
                finally:
                    seats.release()
            else:
                ctx = ctx or _current_get() or _Context(name)
                rest = p._step(at_bulkhead)
                outcome = await p._bulkhead_s.execute(rest, ctx, (fn, args, kwargs))
        """,
        )
    else:
        _call(out, 4, shape)
    if shape.limiter_hint:
        out.add(
            4,
            """
            if outcome is not None and outcome.exception is not None:
                # An upstream hint pauses everyone.
                p._limiter_s._pause(limiter, outcome, ctx or _current_get())
        """,
        )
    out.add(
        4,
        """
        if outcome is None:
            return _Outcome(result) if want_outcome else result
        if want_outcome:
            return outcome
        error = outcome.exception
        if error is not None:
            raise error  # here, not in a helper: one traceback entry fewer
        return outcome.result
    """,
    )
    return "\n".join(out.lines) + "\n"


def _call(out: _Source, at: int, shape: Shape) -> None:
    """Total timeout, retry's first attempt through the breaker and the attempt timeout."""
    if shape.total:
        out.add(
            at,
            """
            deadline = now + total
            budget = None  # made when someone needs it (a delegation or an expiry)
        """,
        )
    if shape.retry:
        out.add(at, "started = now" if shape.retry_timed else "started = 0.0")
        if shape.retry_budget:
            out.add(at, "retry_budget.deposit()")
    if shape.breaker:
        if shape.breaker_plain:
            out.add(
                at,
                """
                state = ctl.state
                if state is _CLOSED:
                    epoch = ctl.epoch
            """,
            )
            _attempt(out, at + 4, shape)
            out.add(
                at + 4,
                """
                if outcome is None and epoch == ctl.epoch:
                    ctl.window.add_success()
                else:
                    ctx = ctx or _current_get() or _Context(name)
                    seen = _Outcome(result) if outcome is None else outcome
                    failed = p._breaker_s._failed(seen)
                    ctl.record(epoch, breaker_now(), failed, False, context=ctx, outcome=seen)
            """,
            )
            out.add(at, "elif state is _OPEN and (moment := breaker_now()) < ctl.blocked_until:")
        else:
            out.add(at, "if ctl.state is _OPEN and (moment := breaker_now()) < ctl.blocked_until:")
        out.add(
            at + 4,
            "error = p._breaker_s._rejection("
            "ctl.blocked_until - moment, False, ctx or _current_get())",
        )
        if not shape.retry and not shape.limiter_hint:
            out.add(
                at + 4,
                """
                if not want_outcome:
                    raise error  # nothing after the breaker looks at it: no outcome needed
            """,
            )
        out.add(at + 4, "outcome = _Outcome(None, error)")
        out.add(at, "else:  # half-open, isolated, a break over, or a breaker that is not plain")
        out.add(at + 4, "ctx = ctx or _current_get() or _Context(name)")
        if shape.total:
            out.add(at + 4, "budget = _Budget(total_s, deadline, total, name)")
        step = "p._breaker_s.execute(p._step(at_breaker), ctx, (fn, args, kwargs))"
        _delegate(out, at + 4, shape, step)
    else:
        _attempt(out, at, shape)
    if shape.retry:
        test = "if True:" if shape.retry_results else "if outcome is not None:"
        out.add(at, test)
        out.add(
            at + 4,
            """
            seen = _Outcome(result) if outcome is None else outcome
            try:
                handled = retry_should(seen)
            except Exception as exc:
                outcome = _Outcome(None, exc)
                handled = False
            if handled:
                error = seen.exception
                if error is not None and _never_retried(error):
                    outcome = seen
                else:
                    ctx = ctx or _current_get() or _Context(name)
        """,
        )
        if shape.total:
            out.add(
                at + 12,
                """
                if budget is None:
                    budget = _Budget(total_s, deadline, total, name)
            """,
            )
        _delegate(
            out,
            at + 12,
            shape,
            "retry_s._retry(p._step(at_retry), ctx, (fn, args, kwargs), seen, started)",
        )
    if shape.total:
        out.add(
            at,
            """
            if budget is not None and outcome is not None:
                error = budget.error
                if error is not None and outcome.exception is error:  # the total's own expiry
                    ctx = ctx or _current_get() or _Context(name)
                    outcome = await total_s._report(ctx, error.timeout or 0.0, outcome)
        """,
        )


def _delegate(out: _Source, at: int, shape: Shape, step: str) -> None:
    """Hand the rest of the call to a strategy's own code, the total's budget published."""
    if not shape.total:
        out.add(at, f"outcome = await {step}")
        return
    out.add(
        at,
        f"""
        token = _DEADLINE_set(budget)
        try:
            outcome = await {step}
        finally:
            _DEADLINE_reset(token)
    """,
    )


def _attempt(out: _Source, at: int, shape: Shape) -> None:
    """One attempt: under the total's remaining time and the attempt timeout."""
    if shape.total:
        out.add(
            at,
            """
            remaining = deadline - now
            if remaining <= 0:
                budget = _Budget(total_s, deadline, total, name)
                outcome = _Outcome(None, budget.expire())
        """,
        )
        bounded = """
            ctx = ctx or _current_get() or _Context(name)
            rest = p._step(at_attempt)
            bounded = await attempt_s._run(clock, remaining, rest, ctx, (fn, args, kwargs))
            if bounded is None:
                budget = _Budget(total_s, deadline, total, name)
                outcome = _Outcome(None, budget.expire())
            else:
                outcome = bounded
        """
        if not shape.attempt:
            out.add(at, "else:  # the total alone bounds the attempt: a timer of its own")
            out.add(at + 4, bounded)
            return
        out.add(at, "elif remaining < attempt_seconds:  # the total runs out first")
        out.add(at + 4, bounded)
        out.add(at, "else:")
        at += 4
    if not shape.attempt:
        out.add(
            at,
            """
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                outcome = _Outcome(None, exc)
        """,
        )
    elif shape.system:
        out.add(
            at,
            """
            loop = _running_loop()
            queue = attempt_s._queue
            if queue is None or queue.loop is not loop:
                queue = attempt_s._queue = _DeadlineQueue(loop)
            task = _current_task(loop)
            if task is None:
                raise RuntimeError("a timeout must run inside an asyncio task")
            when = (now if queue.monotonic_time else loop.time()) + attempt_seconds
            entry_ = queue.add(task, when)
            if entry_ is None:  # out of order: a timer of its own
                ctx = ctx or _current_get() or _Context(name)
                timed = await _run_with_loop_timer(
                    None, attempt_seconds, p._step(at_attempt), ctx, (fn, args, kwargs)
                )
                if timed is None:
                    outcome = await _expired(attempt_s, ctx, attempt_seconds, name)
                else:
                    outcome = timed
            else:
                expired = False
                cancelling = task.cancelling()
                try:
                    try:
                        result = await fn(*args, **kwargs)
                    except Exception as exc:
                        outcome = _Outcome(None, exc)
                except _CancelledError:
                    if entry_.fired and task.uncancel() <= cancelling:
                        expired = True  # only our timer asked for it: our expiry
                    else:
                        raise
                except BaseException:
                    if entry_.fired:
                        task.uncancel()
                    raise
                finally:
                    queue.release(entry_)
                if expired:
                    ctx = ctx or _current_get() or _Context(name)
                    outcome = await _expired(attempt_s, ctx, attempt_seconds, name)
                elif entry_.fired:
                    task.uncancel()  # fn swallowed our cancel and finished: keep its result
        """,
        )
    else:
        out.add(
            at,
            """
            expired = False
            try:
                async with clock.timeout(attempt_seconds):
                    try:
                        result = await fn(*args, **kwargs)
                    except Exception as exc:
                        outcome = _Outcome(None, exc)
            except TimeoutError:
                expired = True
            if expired:
                ctx = ctx or _current_get() or _Context(name)
                outcome = await _expired(attempt_s, ctx, attempt_seconds, name)
        """,
        )


def _finish(outcome: Outcome[Any], want_outcome: bool) -> Any:
    if want_outcome:
        return outcome
    exc = outcome.exception
    if exc is not None:
        raise exc
    return outcome.result


async def _expired(
    strategy: TimeoutStrategy, context: ResilienceContext, seconds: float, name: str
) -> Outcome[Any]:
    error = TimeoutRejectedError(f"timed out after {seconds:g}s", timeout=seconds, dependency=name)
    return await strategy._report(context, seconds, Outcome(None, error))


def _get(by_role: dict[int, tuple[Strategy, int]], role: int, kind: type[Any]) -> Any:
    found = by_role.get(role)
    if found is None:
        return None
    assert isinstance(found[0], kind)
    return found[0]


# What every fused runner's source may name, besides its pipeline's own parts.
_SHARED: dict[str, Any] = {
    "_current_get": _current.get,
    "_current_set": _current.set,
    "_current_reset": _current.reset,
    "_DEADLINE_set": DEADLINE.set,
    "_DEADLINE_reset": DEADLINE.reset,
    "_Context": ResilienceContext,
    "_Outcome": Outcome,
    "_Budget": Budget,
    "_DeadlineQueue": DeadlineQueue,
    "_CLOSED": CircuitState.CLOSED,
    "_OPEN": CircuitState.OPEN,
    "_CancelledError": asyncio.CancelledError,
    "_running_loop": asyncio.get_running_loop,
    "_current_task": asyncio.current_task,
    "_run_with_loop_timer": run_with_loop_timer,
    "_never_retried": _never_retried,
    "_expired": _expired,
    "_finish": _finish,
    "_EPSILON": EPSILON,
}


__all__ = ["Runner", "Shape", "fuse", "stateful_parts"]
