"""Rate limiting: a GCRA token bucket with weighted acquires, a bounded FIFO wait or an
immediate rejection with ``retry_after``, and a shared pause when the upstream says 429.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random as _random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError, RateLimitRejectedError
from netra_resilience.hints import RetryAfterHint, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity, Telemetry
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    duration,
    integer,
    number,
    optional_duration,
    set_field,
    to_seconds,
)


@dataclass(frozen=True, slots=True)
class OnRateLimiterRejectedArgs:
    """What ``on_rejected`` receives: the call's context, the rejection and its cost."""

    context: ResilienceContext
    error: RateLimitRejectedError
    permits: int


OnRateLimiterRejected = Callable[[OnRateLimiterRejectedArgs], Awaitable[None] | None]


@runtime_checkable
class RateLimiter(Protocol):
    """A rate limiter the :class:`RateLimiterStrategy` can drive.

    The strategy calls :meth:`try_acquire` first (synchronous, so the common case costs no
    ``await``) and only when that returns a positive number falls back to :meth:`acquire`.
    A remote limiter (Redis) that cannot decide without I/O may therefore always return a
    positive estimate from :meth:`try_acquire` and do the real work in :meth:`acquire`.
    """

    @property
    def rate(self) -> float:
        """Permits added per second."""
        ...

    @property
    def burst(self) -> int:
        """The most permits that can be taken at once (the bucket size)."""
        ...

    @property
    def paused_until(self) -> float | None:
        """Monotonic time (on the limiter's clock) until which it is paused, or ``None``."""
        ...

    def try_acquire(self, permits: int = 1) -> float:
        """Take ``permits`` now if that is possible without waiting or jumping the queue.

        Returns ``0.0`` when they were taken, otherwise the (positive) number of seconds until
        they would be available, without taking anything; ``math.inf`` when ``permits`` can
        never be granted (more than :attr:`burst`).
        """
        ...

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        """Take ``permits``, waiting in FIFO order for at most ``max_wait`` seconds.

        ``None`` means the limiter's own default. Raises a fresh
        :class:`~netra_resilience.RateLimitRejectedError` (with ``retry_after``) when the
        permits cannot be had in time; a cancelled wait takes nothing.
        """
        ...

    def pause(self, seconds: Seconds) -> None:
        """Admit nobody for ``seconds`` from now (an upstream 429's ``Retry-After``).

        A pause extends an earlier one and never shortens it.
        """
        ...


EPSILON = 1e-6
"""Times closer than this count as equal (float drift must not cost an extra wake-up)."""


_NEVER = -math.inf  # one float for every fresh bucket (``-math.inf`` makes a new one)


class _Waiter:
    __slots__ = ("deadline", "future", "permits", "retry_after")

    def __init__(self, permits: int, deadline: float) -> None:
        self.permits = permits
        self.deadline = deadline
        self.future: asyncio.Future[None] | None = None
        self.retry_after: float | None = None  # set when a pause rejects it while queued


class BucketQueue:
    """GCRA state (``_empty_at``: when the bucket is or was empty) plus the waiters.

    The base of :class:`TokenBucketLimiter`: inheriting keeps the hot path's attribute reads
    on ``self`` while the waiting logic lives in this file.
    """

    __slots__ = (
        "_burst_time",
        "_clock",
        "_empty_at",
        "_interval",
        "_monotonic",
        "_paused_until",
        "_queued_permits",
        "_waiters",
    )

    def __init__(self, clock: Clock, interval: float, burst_time: float) -> None:
        self._clock = clock
        self._monotonic = clock.monotonic  # bound once: one lookup less per call
        self._interval = interval
        self._burst_time = burst_time
        self._empty_at = -math.inf  # starts full
        self._paused_until = -math.inf
        self._queued_permits = 0
        # Made by the first wait: an empty OrderedDict is ~0.1 KB, kept by every per-key bucket.
        self._waiters: OrderedDict[_Waiter, None] | None = None

    async def _wait(self, permits: int, deadline: float) -> None:
        """Queue for ``permits``; the caller checked that ``deadline`` can be met."""
        waiter = _Waiter(permits, deadline)
        if self._waiters is None:
            self._waiters = OrderedDict()
        waiters = self._waiters
        waiters[waiter] = None
        self._queued_permits += permits
        loop = asyncio.get_running_loop()
        try:
            while True:
                if waiter.retry_after is not None:
                    raise RateLimitRejectedError(
                        "rate limit: paused beyond max_wait", retry_after=waiter.retry_after
                    )
                future = loop.create_future()
                waiter.future = future
                if next(iter(waiters)) is not waiter:
                    await future  # resolved when this waiter becomes the head
                    continue
                delay = self._take(waiter)
                if delay == 0.0:
                    return
                try:
                    # Resolved early only by a pause, which changes the head's wait.
                    async with self._clock.timeout(delay):
                        await future
                except TimeoutError:
                    pass
        except BaseException:
            self._leave(waiter)
            raise

    def _take(self, waiter: _Waiter) -> float:
        now = self._monotonic()
        base = max(self._empty_at, now - self._burst_time)
        taken = base + waiter.permits * self._interval
        if taken > now + EPSILON:
            return taken - now
        self._empty_at = taken
        assert self._waiters is not None  # the waiter is queued
        del self._waiters[waiter]
        self._queued_permits -= waiter.permits
        self._wake_head()
        return 0.0

    def _leave(self, waiter: _Waiter) -> None:
        waiters = self._waiters
        if waiters is None or waiter not in waiters:
            return
        was_head = next(iter(waiters)) is waiter
        del waiters[waiter]
        self._queued_permits -= waiter.permits
        if was_head:
            self._wake_head()

    def _wake_head(self) -> None:
        waiters = self._waiters
        if waiters:
            future = next(iter(waiters)).future
            if future is not None and not future.done():
                future.set_result(None)

    def _pause_until(self, until: float) -> None:
        """Nothing is admitted before ``until``; the bucket refills from empty after it.

        Queued waiters that can no longer be served within their ``max_wait`` are rejected at
        once (with ``retry_after``) instead of discovering it at their deadline.
        """
        if until <= self._paused_until:
            return
        self._paused_until = until
        self._empty_at = max(self._empty_at, until)
        waiters = self._waiters
        if not waiters:
            return
        now = self._monotonic()
        served_at = self._empty_at
        for waiter in list(waiters):
            end = served_at + waiter.permits * self._interval
            if end <= waiter.deadline + EPSILON:
                served_at = end
                continue
            del waiters[waiter]
            self._queued_permits -= waiter.permits
            waiter.retry_after = end - now
            future = waiter.future
            if future is not None and not future.done():
                future.set_result(None)
        self._wake_head()  # the head re-computes its (longer) sleep


def _seconds_arg(method: str, field: str, value: Seconds) -> float:
    seconds = to_seconds(value)
    if math.isnan(seconds) or seconds < 0:
        owner = f"TokenBucketLimiter.{method}"
        raise InvalidOptionsError(owner, field, f"must be >= 0, got {seconds!r}")
    return seconds


class TokenBucketLimiter(BucketQueue):
    """``rate`` permits per second, at most ``burst`` at once; weighted, FIFO, pausable.

    (A fused pipeline does :meth:`try_acquire`'s free-permit step inline, in
    ``netra_resilience.fused``: keep the two in step.)

    The bucket is kept as one number (GCRA): the time at which it was, or will be, empty. A
    free permit costs one clock read and a few float operations, with no ``await``. Callers
    that must wait queue in FIFO order and only the head of the queue sleeps, so a thousand
    waiters cost one timer, not a thousand wake-ups per tick; a big request at the head is
    never overtaken by small ones.

    ``max_wait`` is the default bound on a wait (``0.0``: reject at once with
    ``retry_after``). :meth:`pause` (an upstream 429) also empties the bucket: permits come
    back at ``rate`` after the pause, not as one burst that would trip the upstream again.
    """

    __slots__ = ("_burst", "_max_wait", "_rate")

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Clock | None = None,
        max_wait: Seconds = 0.0,
    ) -> None:
        owner = "TokenBucketLimiter"
        self._rate = number(owner, "rate", rate)
        self._burst = integer(owner, "burst", burst, minimum=1)
        self._max_wait = duration(owner, "max_wait", max_wait, allow_zero=True)
        super().__init__(clock or SYSTEM_CLOCK, 1.0 / self._rate, self._burst / self._rate)

    def fresh_copy(self) -> TokenBucketLimiter:
        """A full bucket with this one's settings and clock, nobody waiting (a per-key
        pipeline's own bucket: no validation, nothing shared but the settings)."""
        copy = TokenBucketLimiter.__new__(TokenBucketLimiter)
        copy._clock = self._clock
        copy._monotonic = self._monotonic
        copy._interval = self._interval
        copy._burst_time = self._burst_time
        copy._rate = self._rate
        copy._burst = self._burst
        copy._max_wait = self._max_wait
        copy._empty_at = copy._paused_until = _NEVER
        copy._queued_permits = 0
        copy._waiters = None
        return copy

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def max_wait(self) -> float:
        return self._max_wait

    @property
    def waiting(self) -> int:
        """Callers queued for permits right now."""
        waiters = self._waiters
        return 0 if waiters is None else len(waiters)

    @property
    def paused_until(self) -> float | None:
        until = self._paused_until
        return until if until > self._monotonic() else None

    def try_acquire(self, permits: int = 1) -> float:
        now = self._monotonic()
        base = self._empty_at
        floor = now - self._burst_time
        if base < floor:  # noqa: PLR1730 (an if is cheaper than max() on the hot path)
            base = floor
        if permits >= 0 and not self._waiters:
            taken = base + permits * self._interval
            if taken <= now + EPSILON:
                self._empty_at = taken
                return 0.0
        return self._wait_needed(permits, now, base)

    def _wait_needed(self, permits: int, now: float, base: float) -> float:
        if permits < 0:
            raise ValueError(f"permits must be >= 0, got {permits!r}")
        if permits == 0:
            return 0.0
        if permits > self._burst:
            return math.inf
        wait = base + (self._queued_permits + permits) * self._interval - now
        return wait if wait > EPSILON else EPSILON

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        limit = (
            self._max_wait if max_wait is None else _seconds_arg("acquire", "max_wait", max_wait)
        )
        wait = self.try_acquire(permits)
        if wait == 0.0:
            return
        if permits > self._burst:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permits exceed the burst of {self._burst}; "
                "such a request can never be admitted"
            )
        if wait > limit + EPSILON:
            raise RateLimitRejectedError(
                f"rate limit: {permits} permit(s) not available within {limit:g}s",
                retry_after=wait,
            )
        await self._wait(permits, self._monotonic() + limit)

    def pause(self, seconds: Seconds) -> None:
        pause = _seconds_arg("pause", "seconds", seconds)
        if pause > 0:
            self._pause_until(self._monotonic() + pause)

    def __repr__(self) -> str:
        return (
            f"TokenBucketLimiter(rate={self._rate:g}, burst={self._burst}, "
            f"max_wait={self._max_wait:g}, waiting={self.waiting})"
        )


class PauseGate:
    """A :class:`RateLimiter` with no rate of its own: it only holds everyone back while an
    upstream has asked for a pause (a 429's ``Retry-After``).

    The LLM preset puts one in front of the provider by default, so one caller's 429 slows
    the provider down for every caller instead of each request honouring it alone. During a
    pause a call is rejected at once (``max_wait=0``, the default: the fallback chain answers
    it) or waits for at most ``max_wait``; waiters resume spread over ``resume_spread`` times the
    pause length (with the injected randomness), so they do not return in one wave.
    """

    __slots__ = ("_clock", "_max_wait", "_paused_for", "_paused_until", "_random", "_spread")

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        max_wait: Seconds = 0.0,
        resume_spread: float = 0.5,
    ) -> None:
        owner = "PauseGate"
        self._clock = clock or SYSTEM_CLOCK
        self._random = random or _random.Random().random
        self._max_wait = duration(owner, "max_wait", max_wait, allow_zero=True)
        self._spread = number(owner, "resume_spread", resume_spread, exclusive=False)
        self._paused_until = 0.0
        self._paused_for = 0.0

    @property
    def max_wait(self) -> float:
        return self._max_wait

    @property
    def rate(self) -> float:
        return math.inf

    @property
    def burst(self) -> int:
        return 2**31

    @property
    def paused_until(self) -> float | None:
        until = self._paused_until
        return until if until > self._clock.monotonic() else None

    def try_acquire(self, permits: int = 1) -> float:
        wait = self._paused_until - self._clock.monotonic()
        return wait if wait > EPSILON else 0.0

    async def acquire(self, permits: int = 1, *, max_wait: Seconds | None = None) -> None:
        limit = self._max_wait if max_wait is None else _seconds_arg("wait", "max_wait", max_wait)
        wait = self.try_acquire(permits)
        if wait == 0.0:
            return
        if wait > limit + EPSILON:
            raise RateLimitRejectedError("paused by the upstream", retry_after=wait)
        # Each waiter resumes at its own point in the spread window (no synchronised wave),
        # but never later than its own max_wait allows.
        jitter = self._random() * self._spread * self._paused_for
        await self._clock.sleep(min(wait + jitter, limit))

    def pause(self, seconds: Seconds) -> None:
        pause = _seconds_arg("pause", "seconds", seconds)
        until = self._clock.monotonic() + pause
        if until > self._paused_until:
            self._paused_until = until
            self._paused_for = pause

    def __repr__(self) -> str:
        return f"PauseGate(paused_until={self.paused_until})"


class PartitionedRateLimiter:
    """Hands out one :class:`RateLimiter` per partition key, created on first use.

    Keys are usually user or tool ids, so their number is unbounded; the partitions live in
    an LRU of at most ``max_partitions``. An evicted partition starts again from a full
    bucket (and forgets a pause) when its key returns, so size ``max_partitions`` above the
    number of keys active within one burst window. Callers already waiting on an evicted
    limiter are still served by it.

    Example::

        per_user = PartitionedRateLimiter(
            lambda key: TokenBucketLimiter(rate=1.0, burst=5), max_partitions=10_000
        )
    """

    __slots__ = ("_factory", "_max_partitions", "_partitions")

    def __init__(
        self, factory: Callable[[str], RateLimiter], *, max_partitions: int = 10_000
    ) -> None:
        if not callable(factory):
            raise TypeError("PartitionedRateLimiter.factory must be callable")
        self._factory = factory
        self._max_partitions = integer(
            "PartitionedRateLimiter", "max_partitions", max_partitions, minimum=1
        )
        self._partitions: OrderedDict[str, RateLimiter] = OrderedDict()

    @property
    def max_partitions(self) -> int:
        return self._max_partitions

    def get(self, key: str) -> RateLimiter:
        """The limiter of ``key`` (created by the factory on first use, then reused)."""
        partitions = self._partitions
        limiter = partitions.get(key)
        if limiter is not None:
            partitions.move_to_end(key)
            return limiter
        limiter = self._factory(key)
        partitions[key] = limiter
        if len(partitions) > self._max_partitions:
            partitions.popitem(last=False)
        return limiter

    def peek(self, key: str) -> RateLimiter | None:
        """The limiter of ``key`` if it exists, without creating it or refreshing its age."""
        return self._partitions.get(key)

    def __len__(self) -> int:
        return len(self._partitions)

    def __contains__(self, key: object) -> bool:
        return key in self._partitions

    def __repr__(self) -> str:
        return (
            f"PartitionedRateLimiter(partitions={len(self._partitions)}, "
            f"max_partitions={self._max_partitions})"
        )


def _scope_key(context: ResilienceContext) -> str:
    return context.scope


class RateLimiterStrategy(Strategy):
    """Acquires permits (sync fast path, FIFO wait otherwise), then runs the callback.

    A rejection becomes ``Outcome(RateLimitRejectedError(retry_after=..., dependency=name))``
    and marks the request ``rate_limited``. After the call, ``pause_hint`` reads an upstream
    ``Retry-After`` from the outcome and pauses the limiter, so one 429 holds back every
    caller instead of letting each discover it with its own request.
    """

    __slots__ = (
        "_fast",
        "_hint",
        "_hint_results",
        "_limiter",
        "_max_pause",
        "_max_wait",
        "_name",
        "_on_rejected",
        "_own_bucket",
        "_partition_key",
        "_partitioned",
        "_permits",
        "_permits_of",
        "_telemetry",
        "may_block",
    )

    kind: ClassVar[str] = "rate_limiter"

    def __init__(self, options: RateLimiterOptions, build: BuildContext) -> None:
        self._name = build.name
        limiter = options.limiter
        self._own_bucket = False
        if limiter is None and options.rate is not None and options.burst is not None:
            limiter = TokenBucketLimiter(rate=options.rate, burst=options.burst, clock=build.clock)
            self._own_bucket = True
        self._limiter = limiter
        self._partitioned = options.partitioned
        self._partition_key = options.partition_key or _scope_key
        permits = options.permits
        self._permits_of = None if isinstance(permits, int) else permits
        self._permits = permits if isinstance(permits, int) else 1
        self._max_wait = options.max_wait
        self._hint = options.pause_hint
        self._max_pause = to_seconds(options.max_pause)
        # The default hint reads exceptions only: skip it on successes (decided once, here).
        self._hint_results = self._hint is not None and self._hint is not retry_after_of
        self._on_rejected = options.on_rejected
        # Decided once: a shared limiter with a constant cost takes the sync fast path.
        fixed = self._limiter is not None and self._permits_of is None
        # (A flag, not the bound method: 64 B less per key of a KeyedPipelines.)
        self._fast = fixed
        self._telemetry = build.telemetry(self.kind)
        # A limiter that rejects instead of waiting never blocks: a total timeout outside a
        # retry may then still fuse with the attempt timeout across it.
        wait = options.max_wait
        if wait is None:
            wait = getattr(limiter, "max_wait", None)
        self.may_block = not (limiter is not None and wait == 0)

    def keyed_copy(self, telemetry: Telemetry | None) -> RateLimiterStrategy:
        """This strategy for one more key (``KeyedPipelines``): its own full bucket when it
        made one (``rate=``/``burst=``), what the options hold shared; the settings shared,
        not re-validated. ``telemetry`` None: this one's (nobody listens)."""
        copy = RateLimiterStrategy.__new__(RateLimiterStrategy)
        for slot in RateLimiterStrategy.__slots__:
            setattr(copy, slot, getattr(self, slot))
        if telemetry is not None:
            copy._telemetry = telemetry
        if self._own_bucket:
            assert isinstance(self._limiter, TokenBucketLimiter)
            bucket = self._limiter.fresh_copy()
            copy._limiter = bucket
        return copy

    @property
    def limiter(self) -> RateLimiter | None:
        return self._limiter

    @property
    def partitioned(self) -> PartitionedRateLimiter | None:
        return self._partitioned

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        limiter = self._limiter
        try:
            acquired = (
                self._fast and limiter is not None and limiter.try_acquire(self._permits) == 0.0
            )
        except Exception as exc:  # a third-party limiter's bug must not escape as a raise
            return Outcome(None, exc)
        if not acquired:
            return await self._execute_slow(callback, context, state)
        # Fast path: one shared limiter, constant cost, permits taken without an await.
        outcome = await callback(context, state)
        if self._hint_results or (outcome.exception is not None and self._hint is not None):
            self._pause(self._limiter, outcome, context)
        return outcome

    async def _execute_slow(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        permits = self._permits
        try:
            limiter, permits = self._resolve(context)
            # With a fast path, its try_acquire already failed; else try the sync path first.
            if self._fast or limiter.try_acquire(permits) != 0.0:
                await limiter.acquire(permits, max_wait=self._max_wait)
        except RateLimitRejectedError as exc:
            return await self._rejected(context, exc, permits)
        except Exception as exc:  # a bad key/permits function, a remote limiter's error
            return Outcome(None, exc)
        outcome = await callback(context, state)
        if self._hint_results or (outcome.exception is not None and self._hint is not None):
            self._pause(limiter, outcome, context)
        return outcome

    def _resolve(self, context: ResilienceContext) -> tuple[RateLimiter, int]:
        limiter = self._limiter
        if limiter is None:
            assert self._partitioned is not None
            limiter = self._partitioned.get(self._partition_key(context))
        permits = self._permits
        if self._permits_of is not None:
            permits = self._permits_of(context)
            if isinstance(permits, bool) or not isinstance(permits, int) or permits < 0:
                raise ValueError(
                    f"RateLimiterOptions.permits returned {permits!r}, not an int >= 0"
                )
        return limiter, permits

    async def _rejected(
        self, context: ResilienceContext, cause: RateLimitRejectedError, permits: int
    ) -> Outcome[Any]:
        # A fresh error, named after this dependency, without the limiter's traceback.
        error = RateLimitRejectedError(
            str(cause), retry_after=cause.retry_after, dependency=self._name
        )
        context.degradation.mark(self._name, DegradationReason.RATE_LIMITED)
        if self._telemetry.enabled:
            self._telemetry.emit(
                "rate_limiter_rejected",
                Severity.WARNING,
                context.operation_key,
                permits=permits,
                retry_after=error.retry_after,
            )
        if self._on_rejected is not None:
            try:
                result = self._on_rejected(OnRateLimiterRejectedArgs(context, error, permits))
                if inspect.isawaitable(result):
                    await result
            except Exception:  # an observer must not turn a rejection into another error
                pass
        return Outcome(None, error)

    def _pause(
        self,
        limiter: RateLimiter | None,
        outcome: Outcome[Any],
        context: ResilienceContext | None,  # None: a fused pipeline's private context
    ) -> None:
        if self._hint is None or limiter is None:
            return
        try:
            hinted = self._hint(outcome)
            if hinted is None or not hinted > 0.0:  # NaN compares False: ignored
                return
            seconds = min(hinted, self._max_pause)
            limiter.pause(seconds)
        except Exception:  # a broken hint or a remote limiter's error must not fail the call
            return
        if self._telemetry.enabled:
            key = self._name if context is None else context.operation_key
            self._telemetry.emit("rate_limiter_paused", Severity.WARNING, key, seconds=seconds)


_OWNER = "RateLimiterOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimiterOptions:
    """Options of the rate-limiter strategy: ``rate``/``burst``, or exactly one of
    ``limiter`` / ``partitioned``.

    * ``rate`` + ``burst``: a token bucket of its own, built on the pipeline's clock
      (``add_rate_limiter(rate=5, burst=10)``).

    * ``limiter``: one limiter shared by every call of the pipeline (e.g. a provider's RPM).
    * ``partitioned`` + ``partition_key``: one limiter per key; the key defaults to the
      caller scope (``context.scope``: tenant/user), e.g. ``lambda ctx: ctx.user_id or ""``.
    * ``permits``: what a call costs, a constant or a function of the context (token-weighted
      TPM limits); must stay within the limiter's ``burst``.
    * ``max_wait``: how long a call may queue (``None``: the limiter's own default).
    * ``pause_hint``: after a call, an upstream ``Retry-After`` read from its outcome pauses
      the limiter for every caller (``None`` turns that off), for at most ``max_pause``.
    """

    rate: float | None = None
    burst: int | None = None
    limiter: RateLimiter | None = None
    partitioned: PartitionedRateLimiter | None = None
    partition_key: Callable[[ResilienceContext], str] | None = None
    permits: int | Callable[[ResilienceContext], int] = 1
    max_wait: Seconds | None = None
    pause_hint: RetryAfterHint | None = retry_after_of
    max_pause: Seconds = 300.0
    on_rejected: OnRateLimiterRejected | None = None

    def __post_init__(self) -> None:
        if (self.rate is None) != (self.burst is None):
            raise InvalidOptionsError(_OWNER, "rate", "and burst= go together")
        if self.rate is not None:
            if self.limiter is not None or self.partitioned is not None:
                raise InvalidOptionsError(_OWNER, "rate", "excludes limiter= and partitioned=")
            number(_OWNER, "rate", self.rate)
            integer(_OWNER, "burst", cast(int, self.burst), minimum=1)
        elif (self.limiter is None) == (self.partitioned is None):
            raise InvalidOptionsError(
                _OWNER, "limiter", "needs rate=/burst=, or exactly one of limiter= or partitioned="
            )
        if self.limiter is not None and not isinstance(self.limiter, RateLimiter):
            raise InvalidOptionsError(
                _OWNER, "limiter", f"must implement RateLimiter, got {type(self.limiter).__name__}"
            )
        if self.partitioned is not None and not isinstance(
            self.partitioned, PartitionedRateLimiter
        ):
            raise InvalidOptionsError(_OWNER, "partitioned", "must be a PartitionedRateLimiter")
        if self.partition_key is not None and self.partitioned is None:
            raise InvalidOptionsError(_OWNER, "partition_key", "needs partitioned=")
        callable_or_none(_OWNER, "partition_key", self.partition_key)
        callable_or_none(_OWNER, "pause_hint", self.pause_hint)
        set_field(self, "max_pause", duration(_OWNER, "max_pause", self.max_pause))
        callable_or_none(_OWNER, "on_rejected", self.on_rejected)
        if not callable(self.permits):
            integer(_OWNER, "permits", self.permits, minimum=1)
            burst = self.burst if self.limiter is None else self.limiter.burst
            if burst is not None and self.permits > burst:
                message = f"must be <= the limiter's burst ({burst}), got {self.permits}"
                raise InvalidOptionsError(_OWNER, "permits", message)
        set_field(
            self, "max_wait", optional_duration(_OWNER, "max_wait", self.max_wait, allow_zero=True)
        )

    def create_strategy(self, build: BuildContext) -> RateLimiterStrategy:
        return RateLimiterStrategy(self, build)


__all__ = [
    "OnRateLimiterRejected",
    "OnRateLimiterRejectedArgs",
    "PartitionedRateLimiter",
    "PauseGate",
    "RateLimiter",
    "RateLimiterOptions",
    "RateLimiterStrategy",
    "TokenBucketLimiter",
]
