"""Admission control: an adaptive concurrency limit with priority shedding and tenant fairness,
and a retry budget that caps retries and hedges system-wide.

The limit moves with observed latency and drops (timeouts), by one of three algorithms taken
from Netflix concurrency-limits: :class:`VegasLimit` (the default, close to failsafe-go's
AdaptiveLimiter), :class:`Gradient2Limit` and :class:`AIMDLimit`. Callers over the limit wait
in a bounded queue ordered by :class:`Priority`; a lower priority may use less of the queue,
and when the queue is full the lowest priority (and within it the tenant holding most) is
shed first (failsafe-go's Prioritizer, Netflix's partitions). A freed seat goes to the highest
priority waiting, and within it to the tenant holding the fewest seats, so one tenant cannot
starve another.

:class:`RetryBudget` is Finagle's / Envoy's retry budget: retries (and hedges) may be at most
``ratio`` of the requests seen in the last ``ttl`` seconds, plus a small reserve, so a failing
upstream sees at most ``1 + ratio`` times its normal load instead of ``max_attempts`` times.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Protocol

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import AdmissionRejectedError, InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ShouldHandle, as_predicate
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    duration,
    integer,
    number,
    optional_duration,
    ratio,
    set_field,
    to_seconds,
)


class Priority(IntEnum):
    """How important a call is; under overload the lowest is shed first."""

    BACKGROUND = 0
    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4


PRIORITY_PROPERTY = "netra.priority"
"""``context.properties[PRIORITY_PROPERTY] = Priority.HIGH`` sets a call's priority."""

_LEVELS = len(Priority)
_RESERVE_LEVEL = Priority.HIGH  # this priority and above may take the reserved seats


def _reserve_ratio(owner: str, value: float) -> float:
    number(owner, "priority_reserve", value, minimum=0.0, exclusive=False)
    if value > 0.5:
        raise InvalidOptionsError(owner, "priority_reserve", "must be at most 0.5")
    return float(value)


def _log10(limit: float) -> int:
    # Netflix's Log10RootFunction: grows slowly with the limit, never below 1.
    return max(1, int(math.log10(max(limit, 1.0))))


# -- limit algorithms -----------------------------------------------------------------


class LimitEstimator(Protocol):
    """The running state of a limit algorithm: one per limiter."""

    limit: float
    slow_start: bool
    """Still searching for the upstream's capacity: the limiter samples every two round trips
    instead of every ``sample_window`` (TCP slow start works per round trip)."""

    def update(self, rtt: float, inflight: int, dropped: bool) -> float: ...


def _bounds(owner: str, initial: int, minimum: int, maximum: int) -> None:
    integer(owner, "min_limit", minimum, minimum=1)
    integer(owner, "max_limit", maximum, minimum=minimum)
    integer(owner, "initial_limit", initial, minimum=minimum, maximum=maximum)


@dataclass(frozen=True, slots=True, kw_only=True)
class AIMDLimit:
    """Additive increase, multiplicative decrease (Netflix ``AIMDLimit``).

    A drop, or a call slower than ``timeout``, multiplies the limit by ``backoff_ratio``; a
    success while at least half the limit is in use adds one.
    """

    initial_limit: int = 20
    min_limit: int = 1
    max_limit: int = 200
    backoff_ratio: float = 0.9
    timeout: Seconds = 5.0

    def __post_init__(self) -> None:
        _bounds("AIMDLimit", self.initial_limit, self.min_limit, self.max_limit)
        number("AIMDLimit", "backoff_ratio", self.backoff_ratio)
        if not 0.5 <= self.backoff_ratio < 1:
            raise InvalidOptionsError("AIMDLimit", "backoff_ratio", "must be in [0.5, 1)")
        set_field(self, "timeout", duration("AIMDLimit", "timeout", self.timeout))

    def estimator(self, random: Callable[[], float]) -> LimitEstimator:
        return _AIMD(self)


class _AIMD:
    __slots__ = ("_o", "_timeout", "limit")
    slow_start = False

    def __init__(self, options: AIMDLimit) -> None:
        self._o = options
        self._timeout = to_seconds(options.timeout)
        self.limit = float(options.initial_limit)

    def update(self, rtt: float, inflight: int, dropped: bool) -> float:
        limit = self.limit
        if dropped or rtt > self._timeout:
            limit = math.floor(limit * self._o.backoff_ratio)
        elif inflight * 2 >= limit:
            limit += 1
        self.limit = float(min(self._o.max_limit, max(self._o.min_limit, limit)))
        return self.limit


@dataclass(frozen=True, slots=True, kw_only=True)
class VegasLimit:
    """TCP Vegas (Netflix ``VegasLimit``): the queue a call saw is estimated from its latency
    against the lowest latency seen (``limit * (1 - rtt_noload / rtt)``).

    Below ``log10(limit)`` queued the limit grows fast, below ``3·log10`` by ``log10``; above
    ``6·log10`` it shrinks by half the excess over ``6·log10`` (at least ``log10``: Netflix
    always takes ``log10``, which leaves a provider that halved its capacity overloaded for
    dozens of windows), and by ``log10`` on a drop. The no-load latency is re-probed every
    ``probe_multiplier x limit`` samples (jittered) so it can follow a slower upstream.

    ``slow_start`` (TCP Vegas, Brakmo & Peterson): until the first sample that shows a queue
    (or a drop), the limit doubles per sample instead of adding ``6·log10``, so a limiter
    started far below the upstream's capacity finds it in a few windows, not dozens.
    """

    initial_limit: int = 20
    min_limit: int = 1
    max_limit: int = 200
    smoothing: float = 1.0
    probe_multiplier: int = 30
    slow_start: bool = True

    def __post_init__(self) -> None:
        _bounds("VegasLimit", self.initial_limit, self.min_limit, self.max_limit)
        ratio("VegasLimit", "smoothing", self.smoothing)
        integer("VegasLimit", "probe_multiplier", self.probe_multiplier)
        if not isinstance(self.slow_start, bool):
            raise InvalidOptionsError("VegasLimit", "slow_start", "must be a bool")

    def estimator(self, random: Callable[[], float]) -> LimitEstimator:
        return _Vegas(self, random)


class _Vegas:
    __slots__ = (
        "_jitter", "_o", "_probe_count", "_random", "_rtt_noload", "limit", "slow_start",
    )  # fmt: skip

    def __init__(self, options: VegasLimit, random: Callable[[], float]) -> None:
        self._o = options
        self._random = random
        self.limit = float(options.initial_limit)
        self._rtt_noload = 0.0
        self._probe_count = 0
        self._jitter = 0.5 + random() / 2
        self.slow_start = options.slow_start

    def update(self, rtt: float, inflight: int, dropped: bool) -> float:
        o = self._o
        self._probe_count += 1
        if self._jitter * o.probe_multiplier * self.limit <= self._probe_count:
            self._jitter, self._probe_count = 0.5 + self._random() / 2, 0
            self._rtt_noload = rtt
            return self.limit
        if self._rtt_noload == 0 and self.slow_start:
            self._rtt_noload = rtt  # the first sample: no queue by definition, keep ramping
        elif self._rtt_noload == 0 or rtt < self._rtt_noload:
            self._rtt_noload = rtt
            return self.limit
        limit = self.limit
        queue = math.ceil(limit * (1 - self._rtt_noload / rtt)) if rtt > 0 else 0
        log = _log10(limit)
        if dropped:
            self.slow_start = False
            new = limit - log
        elif inflight * 2 < limit:
            return limit  # not using the limit: no evidence for growing it
        elif queue <= log:
            new = limit * 2 if self.slow_start else limit + 6 * log
        elif queue < 3 * log:
            self.slow_start = False
            new = limit + log
        elif queue > 6 * log:
            self.slow_start = False
            new = limit - max(log, queue - 6 * log)
        else:
            self.slow_start = False
            return limit
        new = max(o.min_limit, min(o.max_limit, new))
        self.limit = (1 - o.smoothing) * limit + o.smoothing * new
        return self.limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Gradient2Limit:
    """The gradient of a long-term average latency over the current one (Netflix
    ``Gradient2Limit``).

    ``gradient = clamp(tolerance · long_rtt / rtt, 0.5, 1)``; ``limit = limit · gradient +
    queue_size``, smoothed by ``smoothing``. The long average follows latency slowly
    (``long_window`` samples) and is pulled down fast when latency falls to under half of it.
    It sheds while latency *rises*; a lasting higher latency becomes its new normal (within
    ``tolerance``), so under a steady overload it drifts up where Vegas holds. A drop halves
    the gradient (Netflix ignores drops here).
    """

    initial_limit: int = 20
    min_limit: int = 1
    max_limit: int = 200
    smoothing: float = 0.2
    queue_size: int = 4
    tolerance: float = 1.5
    long_window: int = 600

    def __post_init__(self) -> None:
        _bounds("Gradient2Limit", self.initial_limit, self.min_limit, self.max_limit)
        ratio("Gradient2Limit", "smoothing", self.smoothing)
        integer("Gradient2Limit", "queue_size", self.queue_size, minimum=0)
        number("Gradient2Limit", "tolerance", self.tolerance)
        if self.tolerance < 1:
            raise InvalidOptionsError("Gradient2Limit", "tolerance", "must be at least 1")
        integer("Gradient2Limit", "long_window", self.long_window)

    def estimator(self, random: Callable[[], float]) -> LimitEstimator:
        return _Gradient2(self)


_WARMUP = 10  # samples averaged plainly before the long average turns exponential (Netflix)


class _Gradient2:
    __slots__ = ("_count", "_factor", "_long", "_o", "limit")
    slow_start = False

    def __init__(self, options: Gradient2Limit) -> None:
        self._o = options
        self.limit = float(options.initial_limit)
        self._long = 0.0
        self._count = 0
        self._factor = 2 / (options.long_window + 1)

    def update(self, rtt: float, inflight: int, dropped: bool) -> float:
        o = self._o
        if self._count < _WARMUP:
            self._count += 1
            self._long += (rtt - self._long) / self._count
        else:
            self._long = self._long * (1 - self._factor) + rtt * self._factor
        long = self._long
        if rtt > 0 and long / rtt > 2:
            self._long = long * 0.95  # latency is back to normal: forget the overload faster
        if inflight < self.limit / 2:
            return self.limit  # app-limited: no evidence for changing the limit
        gradient = 1.0 if rtt <= 0 else max(0.5, min(1.0, o.tolerance * long / rtt))
        if dropped:
            gradient = 0.5
        new = self.limit * gradient + o.queue_size
        new = self.limit * (1 - o.smoothing) + new * o.smoothing
        self.limit = max(o.min_limit, min(o.max_limit, new))
        return self.limit


LimitAlgorithm = AIMDLimit | VegasLimit | Gradient2Limit


# -- the limiter ----------------------------------------------------------------------


class _Waiter:
    __slots__ = ("future", "priority", "tenant")

    def __init__(self, future: asyncio.Future[None], priority: int, tenant: str) -> None:
        self.future = future
        self.priority = priority
        self.tenant = tenant


class Permit:
    """A seat held in an :class:`AdaptiveLimiter`; give it back exactly once.

    :meth:`record` feeds the call's latency to the limit algorithm; :meth:`discard` does not
    (a cancelled call says nothing about the upstream's capacity).
    """

    __slots__ = ("_inflight", "_limiter", "_released", "_started", "tenant")

    def __init__(self, limiter: AdaptiveLimiter, tenant: str, started: float, inflight: int):
        self._limiter = limiter
        self.tenant = tenant
        self._started = started
        self._inflight = inflight
        self._released = False

    def record(self, *, dropped: bool = False) -> None:
        if self._released:
            return
        self._released = True
        limiter = self._limiter
        limiter._sample(limiter._clock.monotonic() - self._started, self._inflight, dropped)
        limiter._release(self.tenant)

    def discard(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self.tenant)


class AdaptiveLimiter:
    """An adaptive concurrency limit with a priority queue and per-tenant fairness.

    * A call takes a seat when fewer than ``limit`` are in flight and nobody of its priority
      or higher waits. ``priority_reserve`` (e.g. 0.1; default 0) holds that share of the
      limit, rounded down, for ``HIGH`` and ``CRITICAL`` calls (Netflix's guaranteed
      partitions): a flood of low calls fills the rest, so an important call finds a seat at
      once instead of queueing behind them. The adaptive limit grows past what the low calls
      hold until latency shows the upstream full, so an unused reserve costs little
      throughput.
    * Otherwise it queues if its priority's share of ``max_queue`` has room: priority ``p``
      may fill ``(p + 1) / 5`` of the queue (background a fifth, critical all of it). When
      there is no room, a queued call of lower priority (or of the same priority but a tenant
      holding more seats and places) is shed in its favour; if there is none, it is shed.
    * A queued call waits at most ``queue_timeout`` (``None``: as long as it takes).
    * A freed seat goes to the highest priority waiting; within it, to the tenant holding the
      fewest seats; within that tenant, first come first served.

    Every shed call gets a fresh :class:`AdmissionRejectedError` whose ``retry_after`` is the
    recent average latency (about when a seat frees up).

    Latencies are fed to the algorithm per window (Netflix ``WindowedLimit``): the average
    latency, the most in flight and whether anything dropped, once ``sample_window`` seconds
    and ``window_samples`` calls have passed, so one burst of fast answers cannot ramp the
    limit hundreds of times a second. ``sample_window=0, window_samples=1`` updates per call.
    """

    __slots__ = (
        "_clock", "_estimator", "_in_flight", "_level_queued", "_limit", "_max_queue",
        "_queue_timeout", "_queued", "_queues", "_reserve", "_reserved", "_rtt", "_shed",
        "_tenant_queued", "_tenant_seats", "_win_count",
        "_win_dropped", "_win_inflight", "_win_start", "_win_sum", "_window", "_window_samples",
        "algorithm",
    )  # fmt: skip

    def __init__(
        self,
        *,
        algorithm: LimitAlgorithm | None = None,
        max_queue: int = 100,
        queue_timeout: Seconds | None = None,
        sample_window: Seconds = 1.0,
        window_samples: int = 10,
        priority_reserve: float = 0.0,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        owner = "AdaptiveLimiter"
        algorithm = VegasLimit() if algorithm is None else algorithm
        if not isinstance(algorithm, AIMDLimit | VegasLimit | Gradient2Limit):
            raise InvalidOptionsError(
                owner, "algorithm", "must be AIMDLimit, VegasLimit or Gradient2Limit"
            )
        callable_or_none(owner, "random", random)
        self.algorithm = algorithm
        self._estimator = algorithm.estimator(random or (lambda: 0.5))
        self._reserve = _reserve_ratio(owner, priority_reserve)
        self._limit = 0
        self._reserved = 0
        self._set_limit(self._estimator.limit)
        self._max_queue = integer(owner, "max_queue", max_queue, minimum=0)
        self._queue_timeout = optional_duration(owner, "queue_timeout", queue_timeout)
        self._clock = clock or SYSTEM_CLOCK
        self._in_flight = 0
        self._queued = 0
        self._level_queued = [0] * _LEVELS
        self._queues: list[dict[str, deque[_Waiter]]] = [{} for _ in range(_LEVELS)]
        self._tenant_seats: dict[str, int] = {}
        self._tenant_queued: dict[str, int] = {}
        self._rtt = 0.0  # recent average latency: the retry_after of a shed call
        self._shed = [0] * _LEVELS
        self._window = duration(owner, "sample_window", sample_window, allow_zero=True)
        if math.isinf(self._window):
            raise InvalidOptionsError(owner, "sample_window", "must be finite")
        self._window_samples = integer(owner, "window_samples", window_samples)
        self._win_start = self._clock.monotonic()
        self._win_count = 0
        self._win_sum = 0.0
        self._win_inflight = 0
        self._win_dropped = False

    # -- figures ----------------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def max_queue(self) -> int:
        return self._max_queue

    def shed(self, priority: Priority | None = None) -> int:
        """How many calls were shed (of one priority, or in all)."""
        return sum(self._shed) if priority is None else self._shed[priority]

    def seats_of(self, tenant: str) -> int:
        return self._tenant_seats.get(tenant, 0)

    # -- acquiring ----------------------------------------------------------------------
    @property
    def reserved(self) -> int:
        """Seats of the current limit that only ``HIGH`` and ``CRITICAL`` calls may take."""
        return self._reserved

    def try_acquire(self, tenant: str = "", priority: Priority = Priority.NORMAL) -> Permit | None:
        """A seat if one is free for ``priority`` and nobody as important waits; never waits."""
        if self._may_seat(int(priority)):
            return self._seat(tenant)
        return None

    async def acquire(self, priority: Priority = Priority.NORMAL, tenant: str = "") -> Permit:
        """A seat, queueing by priority if allowed; raises ``AdmissionRejectedError`` if shed."""
        level = int(priority)
        if self._may_seat(level):
            return self._seat(tenant)
        if not self._make_room(level, tenant):
            raise self._rejection(level, "over the concurrency limit and its queue share")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, level, tenant)
        self._enqueue(waiter)
        try:
            if self._queue_timeout is None:
                await future
            else:
                async with self._clock.timeout(self._queue_timeout):
                    await future
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return self._handed(tenant)  # the seat came together with the deadline
            self._dequeue(waiter)
            raise self._rejection(level, "queue wait timed out") from None
        except AdmissionRejectedError:
            raise  # shed from the queue by a more important call; already dequeued
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(tenant)  # handed a seat, cancelled before resuming: pass it on
            else:
                self._dequeue(waiter)
            raise
        return self._handed(tenant)

    def _cap(self, level: int) -> int:
        return self._limit if level >= _RESERVE_LEVEL else self._limit - self._reserved

    def _may_seat(self, level: int) -> bool:
        if self._in_flight >= self._cap(level):
            return False
        # A waiter less important than this call is one its cap keeps out (see _drain).
        return not self._queued or not any(self._level_queued[level:])

    def _set_limit(self, limit: float) -> None:
        self._limit = max(1, int(limit))
        self._reserved = int(self._limit * self._reserve)

    def _seat(self, tenant: str) -> Permit:
        self._in_flight += 1
        seats = self._tenant_seats
        seats[tenant] = seats.get(tenant, 0) + 1
        return Permit(self, tenant, self._clock.monotonic(), self._in_flight)

    def _handed(self, tenant: str) -> Permit:
        # The seat was counted when it was handed over (see _drain).
        return Permit(self, tenant, self._clock.monotonic(), self._in_flight)

    def _share(self, level: int) -> int:
        return math.ceil(self._max_queue * (level + 1) / _LEVELS)

    def _holding(self, tenant: str) -> int:
        return self._tenant_seats.get(tenant, 0) + self._tenant_queued.get(tenant, 0)

    def _make_room(self, level: int, tenant: str) -> bool:
        """Is there a queue place for this call, shedding a less important waiter if needed?"""
        share = self._share(level)
        if self._queued < share:
            return True
        if self._queued - 1 >= share:
            return False  # the queue is full of calls at least this important
        for lower in range(level + 1):
            tenants = self._queues[lower]
            if not tenants:
                continue
            heaviest = max(tenants, key=self._holding)
            if lower == level and self._holding(heaviest) <= self._holding(tenant) + 1:
                return False  # same priority and no heavier tenant to take the place from
            victim = tenants[heaviest].pop()  # its newest: the one that waited least
            self._forget(victim)
            self._shed[victim.priority] += 1
            victim.future.set_exception(
                self._rejection_error(victim.priority, "displaced by a more important call")
            )
            return True
        return False

    def _enqueue(self, waiter: _Waiter) -> None:
        tenants = self._queues[waiter.priority]
        queue = tenants.get(waiter.tenant)
        if queue is None:
            queue = tenants[waiter.tenant] = deque()
        queue.append(waiter)
        self._queued += 1
        self._level_queued[waiter.priority] += 1
        self._tenant_queued[waiter.tenant] = self._tenant_queued.get(waiter.tenant, 0) + 1

    def _forget(self, waiter: _Waiter) -> None:
        """Bookkeeping of a waiter that left its deque (shed, admitted or gone)."""
        tenants = self._queues[waiter.priority]
        queue = tenants.get(waiter.tenant)
        if queue is not None and not queue:
            del tenants[waiter.tenant]
        self._queued -= 1
        self._level_queued[waiter.priority] -= 1
        left = self._tenant_queued[waiter.tenant] - 1
        if left:
            self._tenant_queued[waiter.tenant] = left
        else:
            del self._tenant_queued[waiter.tenant]

    def _dequeue(self, waiter: _Waiter) -> None:
        queue = self._queues[waiter.priority].get(waiter.tenant)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._forget(waiter)

    def _rejection_error(self, level: int, why: str) -> AdmissionRejectedError:
        return AdmissionRejectedError(
            f"{Priority(level).name.lower()} call shed: {why}",
            retry_after=self._rtt or None,
            priority=Priority(level),
        )

    def _rejection(self, level: int, why: str) -> AdmissionRejectedError:
        self._shed[level] += 1
        return self._rejection_error(level, why)

    # -- releasing ------------------------------------------------------------------------
    def _sample(self, rtt: float, inflight: int, dropped: bool) -> None:
        self._rtt = rtt if self._rtt == 0 else self._rtt * 0.9 + rtt * 0.1
        self._win_count += 1
        self._win_sum += rtt
        self._win_inflight = max(self._win_inflight, inflight)
        self._win_dropped = self._win_dropped or dropped
        now = self._clock.monotonic()
        window = self._window
        if self._estimator.slow_start:
            window = min(window, 2 * self._rtt)
        if self._win_count < self._window_samples or now - self._win_start < window:
            return
        average = self._win_sum / self._win_count
        limit = self._estimator.update(average, self._win_inflight, self._win_dropped)
        self._set_limit(limit)
        self._win_start, self._win_count, self._win_sum = now, 0, 0.0
        self._win_inflight, self._win_dropped = 0, False

    def _release(self, tenant: str) -> None:
        seats = self._tenant_seats
        held = seats.get(tenant, 0)
        if held <= 0 or self._in_flight <= 0:
            raise RuntimeError("AdaptiveLimiter: a seat was released that was not held")
        if held == 1:
            del seats[tenant]
        else:
            seats[tenant] = held - 1
        self._in_flight -= 1
        self._drain()

    def _drain(self) -> None:
        """Hand free seats (the limit may have grown) to the most deserving waiters."""
        while self._queued:
            level = _LEVELS - 1
            while not self._level_queued[level]:
                level -= 1
            if self._in_flight >= self._cap(level):
                return  # the most important waiter cannot be seated: nobody below it can
            waiter = self._next_waiter(level)
            if waiter.future.done():
                continue  # cancelled, not resumed yet: it leaves by itself
            seats = self._tenant_seats
            seats[waiter.tenant] = seats.get(waiter.tenant, 0) + 1
            self._in_flight += 1
            waiter.future.set_result(None)

    def _next_waiter(self, level: int) -> _Waiter:
        tenants = self._queues[level]
        seats = self._tenant_seats
        tenant = min(tenants, key=lambda t: seats.get(t, 0))  # insertion order breaks ties
        waiter = tenants[tenant].popleft()
        self._forget(waiter)
        return waiter

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(limit={self._limit}, reserved={self._reserved}, "
            f"in_flight={self._in_flight}, "
            f"queued={self._queued}, max_queue={self._max_queue})"
        )


# -- the strategy -----------------------------------------------------------------------


def priority_of(context: ResilienceContext) -> Priority:
    """The call's priority: ``context.properties[PRIORITY_PROPERTY]``, else ``NORMAL``."""
    value = context.properties.get(PRIORITY_PROPERTY)
    if isinstance(value, int) and 0 <= value < _LEVELS:
        return Priority(value)
    return Priority.NORMAL


def tenant_of(context: ResilienceContext) -> str:
    """The call's tenant for fairness: ``tenant_id``, else ``user_id``, else anonymous."""
    return context.tenant_id or context.user_id or ""


@dataclass(frozen=True, slots=True)
class OnShedArgs:
    """What ``on_shed`` receives: the call's context and the rejection."""

    context: ResilienceContext
    error: AdmissionRejectedError


class AdmissionStrategy(Strategy):
    """Admits a call through an :class:`AdaptiveLimiter`; the seat is given back in
    ``finally`` and the call's latency is fed to the limit unless it was cancelled.

    A shed call becomes ``Outcome(AdmissionRejectedError(dependency=name))`` and marks the
    request ``shed`` (503 + ``Retry-After`` over HTTP).
    """

    __slots__ = ("_is_drop", "_limiter", "_name", "_on_shed", "_priority", "_telemetry", "_tenant")

    kind: ClassVar[str] = "admission"
    may_block: ClassVar[bool] = True

    def __init__(self, limiter: AdaptiveLimiter, options: AdmissionOptions, build: BuildContext):
        self._limiter = limiter
        self._name = build.name
        self._priority = options.priority
        self._tenant = options.tenant
        self._is_drop = as_predicate("AdmissionOptions", "is_drop", options.is_drop)
        self._on_shed = options.on_shed
        self._telemetry = build.telemetry(self.kind)

    @property
    def limiter(self) -> AdaptiveLimiter:
        return self._limiter

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        limiter = self._limiter
        tenant = self._tenant(context)
        priority = self._priority(context)
        permit = limiter.try_acquire(tenant, priority)
        if permit is None:
            try:
                permit = await limiter.acquire(priority, tenant)
            except AdmissionRejectedError as exc:
                return await self._shed(context, exc)
        completed = False
        try:
            outcome = await callback(context, state)
            completed = True
        finally:
            if not completed:
                permit.discard()  # cancelled (or a BaseException): not a latency sample
        try:
            dropped = self._is_drop(outcome)
        except Exception as exc:  # a predicate failure must not keep the seat
            permit.record()
            return Outcome(None, exc)
        permit.record(dropped=dropped)
        return outcome

    async def _shed(
        self, context: ResilienceContext, cause: AdmissionRejectedError
    ) -> Outcome[Any]:
        error = AdmissionRejectedError(
            str(cause.args[0]),
            retry_after=cause.retry_after,
            dependency=self._name,
            priority=cause.priority,
        )
        context.degradation.mark(self._name, DegradationReason.SHED)
        if self._telemetry.enabled:
            self._telemetry.emit(
                "admission_shed", Severity.WARNING, context.operation_key,
                priority=None if error.priority is None else Priority(error.priority).name.lower(),
                limit=self._limiter.limit, in_flight=self._limiter.in_flight,
                queued=self._limiter.queued,
            )  # fmt: skip
        if self._on_shed is not None:
            try:
                result = self._on_shed(OnShedArgs(context, error))
                if inspect.isawaitable(result):
                    await result
            except Exception:  # an observer must not turn a rejection into another error
                pass
        return Outcome(None, error)


OnShed = Callable[[OnShedArgs], Awaitable[None] | None]

_OWNER = "AdmissionOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionOptions:
    """Options of the admission strategy (see :class:`AdaptiveLimiter`).

    Give ``limiter`` to share one limit between pipelines (its queue settings live on it);
    otherwise each built pipeline gets its own limiter from ``algorithm``, ``max_queue`` and
    ``queue_timeout``, on the pipeline's clock.

    * ``priority(context)`` / ``tenant(context)``: how a call is classified (default:
      :func:`priority_of`, :func:`tenant_of`).
    * ``is_drop``: outcomes that signal overload to the limit (default: timeouts); other
      failures are latency samples like successes, and a cancellation is no sample at all.
    """

    algorithm: LimitAlgorithm | None = None
    limiter: AdaptiveLimiter | None = None
    max_queue: int = 100
    queue_timeout: Seconds | None = None
    sample_window: Seconds = 1.0
    window_samples: int = 10
    priority_reserve: float = 0.0
    priority: Callable[[ResilienceContext], Priority] = priority_of
    tenant: Callable[[ResilienceContext], str] = tenant_of
    is_drop: ShouldHandle = TimeoutError
    on_shed: OnShed | None = None

    def __post_init__(self) -> None:
        if self.limiter is not None:
            if not isinstance(self.limiter, AdaptiveLimiter):
                raise InvalidOptionsError(_OWNER, "limiter", "must be an AdaptiveLimiter")
            defaults = (
                ("algorithm", None), ("max_queue", 100), ("queue_timeout", None),
                ("sample_window", 1.0), ("window_samples", 10), ("priority_reserve", 0.0),
            )  # fmt: skip
            for name, default in defaults:
                if getattr(self, name) != default:
                    raise InvalidOptionsError(_OWNER, name, "is set on the limiter itself")
        elif self.algorithm is not None and not isinstance(
            self.algorithm, AIMDLimit | VegasLimit | Gradient2Limit
        ):
            raise InvalidOptionsError(
                _OWNER, "algorithm", "must be AIMDLimit, VegasLimit or Gradient2Limit"
            )
        integer(_OWNER, "max_queue", self.max_queue, minimum=0)
        set_field(
            self, "queue_timeout", optional_duration(_OWNER, "queue_timeout", self.queue_timeout)
        )
        window = duration(_OWNER, "sample_window", self.sample_window, allow_zero=True)
        if math.isinf(window):
            raise InvalidOptionsError(_OWNER, "sample_window", "must be finite")
        set_field(self, "sample_window", window)
        integer(_OWNER, "window_samples", self.window_samples)
        _reserve_ratio(_OWNER, self.priority_reserve)
        for name in ("priority", "tenant"):
            if not callable(getattr(self, name)):
                raise InvalidOptionsError(_OWNER, name, "must be callable")
        callable_or_none(_OWNER, "on_shed", self.on_shed)
        set_field(self, "is_drop", as_predicate(_OWNER, "is_drop", self.is_drop))

    def create_strategy(self, build: BuildContext) -> AdmissionStrategy:
        limiter = self.limiter
        if limiter is None:
            limiter = AdaptiveLimiter(
                algorithm=self.algorithm,
                max_queue=self.max_queue,
                queue_timeout=self.queue_timeout,
                sample_window=self.sample_window,
                window_samples=self.window_samples,
                priority_reserve=self.priority_reserve,
                clock=build.clock,
                random=build.random,
            )
        return AdmissionStrategy(limiter, self, build)


# -- retry budget ---------------------------------------------------------------------


class RetryBudget:
    """Retries and hedges at most ``ratio`` of recent requests, plus a reserve (Finagle
    ``RetryBudget``, Envoy ``retry_budget``, gRPC retry throttling).

    Every first attempt is :meth:`deposit`-ed; every retry or hedge must :meth:`try_spend`.
    Over the last ``ttl`` seconds (kept in ten buckets), spends stay within
    ``ratio x deposits + min_per_second x ttl``: with everything failing, an upstream sees at
    most ``1 + ratio`` times the requests plus the reserve. Share one budget between every
    pipeline that calls the same dependency. Denied spends are counted in :attr:`denied`.
    """

    __slots__ = ("_deposits", "_reserve", "_spends", "denied", "ratio", "spent")

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 1.0,
        ttl: Seconds = 10.0,
        clock: Clock | None = None,
    ) -> None:
        owner = "RetryBudget"
        number(owner, "ratio", ratio, minimum=0.0, exclusive=False)
        if ratio > 1000:
            raise InvalidOptionsError(owner, "ratio", "must be at most 1000")
        number(owner, "min_per_second", min_per_second, minimum=0.0, exclusive=False)
        seconds = duration(owner, "ttl", ttl)
        if math.isinf(seconds):
            raise InvalidOptionsError(owner, "ttl", "must be finite")
        self.ratio = float(ratio)
        self._reserve = float(min_per_second) * seconds
        clock = clock or SYSTEM_CLOCK
        self._deposits = _Buckets(seconds, clock)
        self._spends = _Buckets(seconds, clock)
        self.spent = 0
        self.denied = 0

    def deposit(self) -> None:
        """Count one first attempt."""
        self._deposits.add()

    def try_spend(self) -> bool:
        """May one more retry or hedge run now? (Counts it if so, counts a denial if not.)"""
        if self._spends.total() + 1 > self.ratio * self._deposits.total() + self._reserve:
            self.denied += 1
            return False
        self._spends.add()
        self.spent += 1
        return True

    @property
    def balance(self) -> float:
        """Retries or hedges that may run now."""
        allowed = self.ratio * self._deposits.total() + self._reserve
        return max(0.0, allowed - self._spends.total())

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio:g}, balance={self.balance:g}, denied={self.denied})"


# -- client-side adaptive throttling -----------------------------------------------------


_THROTTLE = "ThrottleOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleOptions:
    """Client-side adaptive throttling (Google SRE book, "Handling Overload"; failsafe-go
    ``AdaptiveThrottler``): over the last ``window`` seconds, a call is rejected locally with
    probability ``max(0, (requests - k x accepts) / (requests + 1))``, at most
    ``max_rejection``, so a dead upstream is not hammered even before a breaker opens.

    ``requests`` counts every call, the ones rejected here too (that is what lets the rate
    fall until the upstream recovers); ``accepts`` the calls whose outcome ``is_failure``
    does not match (default: any exception). ``k`` = 2 lets the upstream see about twice what
    it accepts.
    """

    k: float = 2.0
    window: Seconds = 120.0
    max_rejection: float = 0.9
    is_failure: ShouldHandle = Exception

    def __post_init__(self) -> None:
        number(_THROTTLE, "k", self.k)
        if self.k < 1:
            raise InvalidOptionsError(_THROTTLE, "k", "must be at least 1")
        window = duration(_THROTTLE, "window", self.window)
        if math.isinf(window):
            raise InvalidOptionsError(_THROTTLE, "window", "must be finite")
        set_field(self, "window", window)
        ratio(_THROTTLE, "max_rejection", self.max_rejection, allow_zero=True)
        set_field(self, "is_failure", as_predicate(_THROTTLE, "is_failure", self.is_failure))

    def create_strategy(self, build: BuildContext) -> ThrottleStrategy:
        return ThrottleStrategy(self, build)


class ThrottleStrategy(Strategy):
    """See :class:`ThrottleOptions`. A local rejection is an ``AdmissionRejectedError``
    marked ``throttled``; a cancelled call counts as neither request nor accept."""

    __slots__ = (
        "_accepts", "_clock", "_failure", "_k", "_max", "_name", "_random", "_requests",
        "_telemetry", "rejected",
    )  # fmt: skip

    kind: ClassVar[str] = "throttle"

    def __init__(self, options: ThrottleOptions, build: BuildContext) -> None:
        self._k = float(options.k)
        self._max = float(options.max_rejection)
        self._failure = as_predicate(_THROTTLE, "is_failure", options.is_failure)
        self._clock = build.clock
        self._random = build.random
        self._name = build.name
        self._telemetry = build.telemetry(self.kind)
        window = to_seconds(options.window)
        self._requests = _Buckets(window, self._clock)
        self._accepts = _Buckets(window, self._clock)
        self.rejected = 0

    @property
    def rejection_probability(self) -> float:
        requests = self._requests.total()
        accepts = self._accepts.total()
        return min(self._max, max(0.0, (requests - self._k * accepts) / (requests + 1)))

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        probability = self.rejection_probability
        if probability > 0 and self._random() < probability:
            self._requests.add()
            self.rejected += 1
            context.degradation.mark(self._name, DegradationReason.THROTTLED)
            if self._telemetry.enabled:
                self._telemetry.emit(
                    "throttled", Severity.WARNING, context.operation_key,
                    failure_ratio=probability,
                )  # fmt: skip
            return Outcome(
                None,
                AdmissionRejectedError(
                    "throttled: the upstream accepts too few calls",
                    retry_after=self._requests.width,
                    dependency=self._name,
                ),
            )
        outcome = await callback(context, state)  # a cancel propagates: counted nowhere
        self._requests.add()
        try:
            failed = self._failure(outcome)
        except Exception as exc:
            return Outcome(None, exc)
        if not failed:
            self._accepts.add()
        return outcome


class _Buckets:
    """A count over the last ``seconds``, kept in ten buckets."""

    __slots__ = ("_bucket", "_clock", "_counts", "_start", "width")

    _N = 10

    def __init__(self, seconds: float, clock: Clock) -> None:
        self._clock = clock
        self.width = seconds / self._N
        self._counts = [0] * self._N
        self._start = clock.monotonic()
        self._bucket = 0

    def _advance(self) -> int:
        now_bucket = int((self._clock.monotonic() - self._start) / self.width)
        if now_bucket > self._bucket:
            for b in range(max(self._bucket + 1, now_bucket - self._N + 1), now_bucket + 1):
                self._counts[b % self._N] = 0
            self._bucket = now_bucket
        return self._bucket % self._N

    def add(self) -> None:
        self._counts[self._advance()] += 1

    def total(self) -> int:
        self._advance()
        return sum(self._counts)


__all__ = [
    "PRIORITY_PROPERTY",
    "AIMDLimit",
    "AdaptiveLimiter",
    "AdmissionOptions",
    "AdmissionStrategy",
    "Gradient2Limit",
    "LimitAlgorithm",
    "LimitEstimator",
    "OnShedArgs",
    "Permit",
    "Priority",
    "RetryBudget",
    "ThrottleOptions",
    "ThrottleStrategy",
    "VegasLimit",
    "priority_of",
    "tenant_of",
]
