"""``BackendBreaker``: the circuit breaker in front of one infrastructure backend (a Redis
server, a database), shared by everything that talks to it.

It is the same state machine as a pipeline's breaker (:class:`CircuitController`, with the
same states, events and manual control), under a policy made for infrastructure:

* a *consecutive-failures* window: ``failure_threshold`` failures in a row open it;
* only failures that mean the backend is unhealthy count (connection errors and timeouts by
  default): a request's own bad data or a local bulkhead rejection says nothing about it;
* every call is bounded by ``timeout``;
* while open, callers skip the backend at once (:meth:`allows` is false) and use their
  fallback; a *background* probe every ``retry_interval`` checks whether it is back, so no
  user call pays for the probe. A successful probe closes it, which listeners (the Redis
  store's resync, the session store's write-back) hear as a transition to ``CLOSED``.

Why ``failure_threshold=3``: one timeout is routinely a GC pause, a failover blip or one slow
command, and opening on it would send every caller to its fallback for ``retry_interval``.
Three in a row is a real outage, and costs little while it lasts: a refused connection fails
in microseconds, and a hung backend costs each caller at most ``timeout`` while the streak
builds (concurrent callers time out together, so the threshold adds no waiting of its own).

Health sees it like any breaker: ``Dependency("redis", ..., breaker=breaker)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from netra_resilience.circuit_breaker._controller import CircuitController, CircuitPolicy
from netra_resilience.circuit_breaker._events import CircuitState, StateEvents, StateListener
from netra_resilience.circuit_breaker._windows import HealthInfo
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import OutcomePredicate, ShouldHandle, as_predicate, handle
from netra_resilience.telemetry import Telemetry, TelemetryListener, TelemetrySource
from netra_resilience.validation import Seconds, duration, integer

T = TypeVar("T")

BACKEND_UNAVAILABLE: OutcomePredicate = handle(OSError)
"""The default ``should_handle``: ``OSError``, i.e. connection errors (refused, reset,
unreachable, DNS) and timeouts. Client libraries with their own error types pass theirs
(``redis_should_handle``, ``sqlalchemy_should_handle`` in ``netra_resilience.integrations``)."""

_CLOSED = CircuitState.CLOSED
_OWNER = "BackendBreaker"


class BackendBreaker:
    """Closed: :meth:`call` runs each call within ``timeout``. Open: :meth:`allows` is false.

    ``probe`` is an ``async () -> None`` that raises while the backend is unavailable (Redis
    ``PING``, ``SELECT 1``). ``should_handle`` (a predicate, an exception class or a tuple of
    them) decides which exceptions from :meth:`call` count as the backend failing; a timeout
    always counts, and the others are neutral (neither a failure nor a success). A caller's
    cancellation counts as neither too.

    ``clock`` and ``telemetry`` come from the application's runtime (tests: a ``FakeClock``);
    state changes are emitted as ``circuit_opened`` / ``circuit_half_opened`` /
    ``circuit_closed`` with ``name`` as the dependency.
    """

    __slots__ = (
        "__weakref__", "_clock", "_ctl", "_events", "_probe", "_probe_task", "_should_handle",
        "failure_threshold", "name", "retry_interval", "timeout",
    )  # fmt: skip

    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        name: str = "backend",
        timeout: Seconds = 0.25,
        failure_threshold: int = 3,
        retry_interval: Seconds = 1.0,
        should_handle: ShouldHandle = BACKEND_UNAVAILABLE,
        clock: Clock | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        if not callable(probe):
            raise InvalidOptionsError(_OWNER, "probe", "must be an async callable")
        if not isinstance(name, str) or not name:
            raise InvalidOptionsError(_OWNER, "name", f"must be a non-empty string, got {name!r}")
        self.name = name
        self.timeout = duration(_OWNER, "timeout", timeout)
        self.failure_threshold = integer(_OWNER, "failure_threshold", failure_threshold)
        self.retry_interval = duration(_OWNER, "retry_interval", retry_interval)
        self._probe = probe
        self._should_handle = as_predicate(_OWNER, "should_handle", should_handle)
        self._clock: Clock = clock or SYSTEM_CLOCK
        source = TelemetrySource(name, "", "circuit_breaker")
        self._events = StateEvents(Telemetry(telemetry, source, self._clock))
        policy = CircuitPolicy(
            failure_ratio=1.0,
            minimum_throughput=self.failure_threshold,
            window="consecutive",
            break_duration=self.retry_interval,
            permitted_calls_in_half_open=1,
            # Longer than the probe's own bound: the probe's timeout always decides first.
            half_open_max_wait=self.retry_interval + self.timeout,
        )
        self._ctl = CircuitController(
            policy, self._events, monotonic=self._clock.monotonic, dependency=name
        )
        self._probe_task: asyncio.Task[None] | None = None

    # -- reads -------------------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        """The clock its timeouts and breaks run on (users' local fallbacks share it)."""
        return self._clock

    @property
    def available(self) -> bool:
        """Whether calls currently go to the backend (closed), without a lazy transition."""
        return self._ctl.state is _CLOSED

    closed = available

    @property
    def probing(self) -> bool:
        """Whether a background probe is in flight right now."""
        return self._probe_task is not None

    @property
    def state(self) -> CircuitState:
        """The state now; an elapsed break reads half-open (the next :meth:`allows` probes)."""
        return self._ctl.advance(self._clock.monotonic())

    @property
    def retry_after(self) -> float | None:
        """Seconds until the next probe may run; ``None`` when closed or isolated."""
        return self._ctl.retry_after(self._clock.monotonic())

    @property
    def health(self) -> HealthInfo:
        """The current failure streak (as throughput and failures)."""
        return self._ctl.window.health(self._clock.monotonic())

    @property
    def last_failure_type(self) -> str | None:
        """Type name of the failure that last opened it (never its message)."""
        return self._ctl.last_failure_type

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(old, new, change)`` on every transition; returns an unsubscribe.
        A transition to ``CLOSED`` means the backend serves again."""
        return self._events.add_listener(listener)

    # -- calls -------------------------------------------------------------------------
    def allows(self) -> bool:
        """True when closed. Otherwise starts the background probe if one is due; False."""
        if self._ctl.state is _CLOSED:
            return True
        if self._probe_task is None:
            self._start_probe(force=False)
        return False

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` within ``timeout``; a counted failure extends the streak, a success
        ends it. Called while not closed, the result is not recorded (probes decide then)."""
        ctl = self._ctl
        recorded = ctl.state is _CLOSED
        epoch = ctl.epoch
        try:
            async with self._clock.timeout(self.timeout):
                result = await fn()
        except Exception as exc:
            if recorded and self._counts(exc):
                failure_type = type(exc).__name__
                ctl.record(epoch, self._clock.monotonic(), True, False, failure_type=failure_type)
            raise
        if recorded:
            ctl.record(epoch, self._clock.monotonic(), False, False)
        return result

    def _counts(self, exc: Exception) -> bool:
        if isinstance(exc, TimeoutError):
            return True
        try:
            return bool(self._should_handle(Outcome(None, exc)))
        except Exception:  # a broken predicate must not open the breaker, nor break the call
            return False

    # -- probing -----------------------------------------------------------------------
    def _start_probe(self, *, force: bool) -> asyncio.Task[None] | None:
        now = self._clock.monotonic()
        epoch = self._ctl.probe(now) if force else self._ctl.acquire(now)
        if epoch < 0:
            return None  # the break is still running, or isolated
        task = asyncio.get_running_loop().create_task(self._run_probe(epoch))
        self._probe_task = task
        return task

    async def _run_probe(self, epoch: int) -> None:
        ctl = self._ctl
        failure_type: str | None = None
        finished = False
        try:
            try:
                async with self._clock.timeout(self.timeout):
                    await self._probe()
            except Exception as exc:  # any error: the backend cannot serve
                failure_type = type(exc).__name__
            finished = True
        finally:
            self._probe_task = None
            now = self._clock.monotonic()
            if not finished:  # cancelled (aclose): the probe slot must not stay taken
                ctl.abandon(epoch, now)
        failed = failure_type is not None
        ctl.record(epoch, now, failed, False, failure_type=failure_type)

    async def probe_now(self) -> bool:
        """Probe now (awaited) unless closed; returns whether the backend is available after.

        Ends a running break early: for a caller that knows the backend may be back."""
        if self._ctl.state is _CLOSED:
            return True
        task = self._probe_task or self._start_probe(force=True)
        if task is not None:
            await asyncio.shield(task)
        return self.available

    # -- manual control and lifetime ---------------------------------------------------
    async def isolate(self) -> None:
        """Skip the backend (and stop probing it) until :meth:`close`."""
        self._ctl.isolate(self._clock.monotonic())

    async def close(self) -> None:
        """Close (the backend serves again) and reset the streak."""
        self._ctl.close(self._clock.monotonic())

    async def aclose(self) -> None:
        """Stop a running probe (the backend itself belongs to its owner)."""
        task = self._probe_task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def __repr__(self) -> str:
        return f"BackendBreaker({self.name!r}, {self._ctl.state.value})"
