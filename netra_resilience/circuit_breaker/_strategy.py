"""``CircuitBreakerStrategy``: the one breaker strategy, over a state backend (an in-process
controller or a shared store; see ``_state``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from netra_resilience.circuit_breaker._controller import (
    BreakTiming,
    CircuitController,
    CircuitSnapshot,
)
from netra_resilience.circuit_breaker._events import CircuitState, StateEvents, StateListener
from netra_resilience.circuit_breaker._state import LocalState, SharedState, StateBackend
from netra_resilience.exceptions import BrokenCircuitError, IsolatedCircuitError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION, TRANSIENT_EXCEPTION
from netra_resilience.strategy import Strategy
from netra_resilience.telemetry import Severity, Telemetry
from netra_resilience.validation import to_seconds

if TYPE_CHECKING:
    from netra_resilience.circuit_breaker._options import CircuitBreakerOptions
    from netra_resilience.circuit_breaker._windows import HealthInfo
    from netra_resilience.context import ResilienceContext
    from netra_resilience.strategy import BuildContext, Callback

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_ISOLATED = CircuitState.ISOLATED
_REASON = "circuit_open"
# BaseException.__new__ stores the message in ``args`` (what ExecutionRejectedError.__init__
# would); the attributes are then set directly: a fast-fail builds one error per call and
# the Python __init__ with keywords was half of a rejection's cost.
_new_open_error = BrokenCircuitError.__new__


# Set once from the options and never changed: per-key copies share them.
_SETTINGS = (
    "_copyable", "_exceptions_only", "_isolated_message", "_name", "_now", "_open_message",
    "_plain", "_should_handle", "_slow", "_telemetry",
)  # fmt: skip


class CircuitBreakerStrategy(Strategy):
    """Fails fast while a dependency is failing; see :class:`CircuitBreakerOptions`.

    Decides once, at build time, what it needs (telemetry, listeners, predicate calls on
    successes, slow-call timing, where its state lives); nothing is re-checked per call. With
    ``store=None`` the state is an in-process controller that the hot path reads directly (no
    await, no allocation of its own); with a store, every call takes the store's two steps.
    """

    __slots__ = (
        "__weakref__", "_backend", "_copyable", "_ctl", "_events", "_events_shared",
        "_exceptions_only", "_isolated_message", "_name", "_now", "_open_message", "_plain",
        "_should_handle", "_slow", "_telemetry",
    )  # fmt: skip

    kind: ClassVar[str] = "circuit_breaker"
    may_block: ClassVar[bool] = False  # never waits: a timeout's deadline fusion may skip it

    def __init__(self, options: CircuitBreakerOptions, build: BuildContext) -> None:
        self._name = build.name
        self._now: Callable[[], float] = build.clock.monotonic
        self._telemetry = build.telemetry("circuit_breaker")
        self._events_shared = False  # a per-key copy's, until it needs its own
        self._events = StateEvents(
            self._telemetry,
            on_opened=options.on_opened,
            on_closed=options.on_closed,
            on_half_opened=options.on_half_opened,
        )
        slow = options.slow_call_duration
        self._slow = None if slow is None else to_seconds(slow)
        handles = cast("Callable[[Outcome[Any]], bool]", options.should_handle)  # normalised
        self._should_handle = handles
        # The stock exception predicates never handle a success: skip calling them for one.
        self._exceptions_only = handles in (ANY_EXCEPTION, TRANSIENT_EXCEPTION)
        self._open_message = f"circuit {build.name!r} is open"
        self._isolated_message = f"circuit {build.name!r} is isolated"
        control = options.control
        # A per-key copy needs nothing but a new in-process state (no control registry,
        # provider binding or store key of its own).
        self._copyable = (
            options.store is None and control is None and options.state_provider is None
        )
        isolated = control is not None and control._register(self)
        timing = BreakTiming(
            static=to_seconds(options.break_duration),
            cap=to_seconds(options.max_break_duration),
            generator=options.break_duration_generator,
            hint=options.retry_after,
        )
        policy = options.policy()
        self._backend: StateBackend
        self._ctl: CircuitController | None
        if options.store is None:
            ctl = CircuitController(
                policy,
                self._events,
                monotonic=self._now,
                dependency=build.name,
                break_fn=timing.duration,
                isolated=isolated,
            )
            self._ctl = ctl
            self._backend = LocalState(ctl, self._now)
        else:
            self._ctl = None
            self._backend = SharedState(
                options.store,
                key=f"{build.name}/{build.instance}" if build.instance else build.name,
                name=build.name,
                policy=policy,
                timing=timing,
                events=self._events,
                telemetry=self._telemetry,
                now=self._now,
                isolated=isolated,
            )
        # Plain: a success needs neither a predicate call nor slow-call timing.
        self._plain = self._ctl is not None and self._exceptions_only and self._slow is None
        if options.state_provider is not None:
            options.state_provider._bind(self)

    def keyed_copy(self, telemetry: Telemetry | None) -> CircuitBreakerStrategy | None:
        """This breaker for one more key (``KeyedPipelines``): closed, its own state, the
        options' settings shared, not re-validated; ``None`` when it cannot be copied (a
        store, a control or a state provider: build it from its options). ``telemetry``
        None: this one's (nobody listens)."""
        ctl = self._ctl
        if not self._copyable or ctl is None:
            return None
        copy = CircuitBreakerStrategy.__new__(CircuitBreakerStrategy)
        for slot in _SETTINGS:
            setattr(copy, slot, getattr(self, slot))
        if telemetry is not None:
            copy._telemetry = telemetry
        events = self._events
        # Nobody listens (no telemetry, no on_* callbacks): the copies share this one's
        # events until a listener is added to one of them (``add_state_listener``).
        copy._events_shared = not events.active and telemetry is None
        if not copy._events_shared:
            events = events.keyed_copy(copy._telemetry)
        copy._events = events
        copy._ctl = own = ctl.keyed_copy(events, self._now)
        copy._backend = LocalState(own, self._now)
        return copy

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        ctl = self._ctl
        if ctl is not None:  # in-process state, read directly
            if ctl.state is _CLOSED:
                # CancelledError while closed is not recorded at all: no try/finally needed.
                epoch = ctl.epoch
                if self._plain:
                    outcome = await callback(context, state)
                    if outcome.exception is None and epoch == ctl.epoch:
                        ctl.window.add_success()
                    else:
                        failed = self._failed(outcome)
                        ctl.record(
                            epoch, self._now(), failed, False, context=context, outcome=outcome
                        )
                    return outcome
                slow_after = self._slow
                start = self._now() if slow_after is not None else 0.0
                outcome = await callback(context, state)
                end = self._now()  # shared by slow-call timing and the window
                slow = slow_after is not None and end - start > slow_after
                failed = (
                    outcome.exception is not None or not self._exceptions_only
                ) and self._failed(outcome)
                if failed or slow or epoch != ctl.epoch:
                    ctl.record(epoch, end, failed, slow, context=context, outcome=outcome)
                else:
                    ctl.window.add(end, False, False)
                return outcome
            if ctl.state is _OPEN:
                now = self._now()
                if now < ctl.blocked_until:
                    return self._reject(ctl.blocked_until - now, False, context)
        return await self._guarded(callback, context, state)

    async def _guarded(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        """Through the backend's steps: a call, a half-open probe, or a rejection."""
        backend = self._backend
        permit = await backend.acquire(context)
        if permit is None:  # the store is unreachable: run unrecorded
            return await callback(context, state)
        if not permit.admitted:
            return self._reject(permit.retry_after, permit.state is _ISOLATED, context)
        start = self._now()
        finished = False
        try:
            outcome = await callback(context, state)
            finished = True
        finally:
            if not finished:  # cancelled: a probe slot must not stay taken
                await backend.abandon(permit, context)
        slow = self._slow is not None and self._now() - start > self._slow
        await backend.record(permit, self._failed(outcome), slow, outcome, context)
        return outcome

    def inline_epoch(self) -> int:
        """For a caller that makes the call itself when it can finish without waiting (a
        hook): the epoch to pass to :meth:`count_success`, when this breaker is closed, in
        process and plain (a success needs no predicate call and no timing); else ``-1``:
        go through the pipeline (which does everything else: rejections, failures, probes)."""
        ctl = self._ctl
        if ctl is not None and self._plain and ctl.state is _CLOSED:
            return ctl.epoch
        return -1

    def count_success(self, epoch: int) -> None:
        """Count a success of a call let through by :meth:`inline_epoch` (``execute``'s step)."""
        ctl = self._ctl
        if ctl is not None and epoch == ctl.epoch:
            ctl.window.add_success()

    def _failed(self, outcome: Outcome[Any]) -> bool:
        try:
            return bool(self._should_handle(outcome))
        except Exception:  # a broken predicate must not break the call, nor trip the breaker
            return False

    def _reject(
        self, retry_after: float | None, isolated: bool, context: ResilienceContext | None
    ) -> Outcome[Any]:
        # Returned (not raised) here: no traceback grows.
        return Outcome(None, self._rejection(retry_after, isolated, context))

    def _rejection(
        self, retry_after: float | None, isolated: bool, context: ResilienceContext | None
    ) -> BrokenCircuitError:
        """A fresh rejection error; marks the context and reports it.

        ``context`` None: a fused pipeline's private context, which nobody can read, so it is
        neither made nor marked.
        """
        if isolated:
            exc: BrokenCircuitError = IsolatedCircuitError(
                self._isolated_message, dependency=self._name
            )
        else:
            exc = _new_open_error(BrokenCircuitError, self._open_message)
            exc.retry_after = retry_after
            exc.dependency = self._name
            # What opened it, by type name only: the upstream's message may hold a secret,
            # and keeping the exception (Polly's inner exception) would pin its frames.
            ctl = self._ctl
            exc.opened_by = (
                ctl.last_failure_type if ctl is not None else self._backend.last_failure_type
            )
        if context is not None:
            context.degradation.mark(self._name, _REASON)
        if self._telemetry.enabled:
            self._telemetry.emit(
                "circuit_rejected",
                Severity.DEBUG,
                self._name if context is None else context.operation_key,
                state="isolated" if isolated else "open",
                retry_after=retry_after,
            )
        return exc

    # -- inspection and manual control -------------------------------------------------
    @property
    def name(self) -> str:
        """The dependency (pipeline) name this breaker guards."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The state now; an elapsed break half-opens when read (Polly), with its event.

        With a shared store: the state this breaker last saw (see :meth:`refresh`)."""
        return self._backend.state

    @property
    def closed(self) -> bool:
        """Closed right now, read without a clock or a lazy transition (cheap: for routing)."""
        return self._backend.closed

    @property
    def retry_after(self) -> float | None:
        """Seconds until a call may be admitted; ``None`` if admitted now or isolated."""
        return self._backend.retry_after

    @property
    def health(self) -> HealthInfo:
        return self._backend.health

    @property
    def last_failure_type(self) -> str | None:
        """Type name of the outcome that last opened the circuit (never its message)."""
        return self._backend.last_failure_type

    async def refresh(self) -> CircuitSnapshot:
        """Read the state where it lives (a shared store: one round trip); no transition."""
        return await self._backend.snapshot()

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(old, new, change)`` on every transition; returns an unsubscribe.

        Listeners run synchronously, in order, never concurrently; their errors are swallowed.
        """
        if self._events_shared:  # a key's first listener: events of its own from now on
            own = self._events.keyed_copy(self._telemetry)
            self._events = own
            self._events_shared = False
            if self._ctl is not None:
                self._ctl._events = own
        return self._events.add_listener(listener)

    async def isolate(self) -> None:
        """Reject every call with :class:`IsolatedCircuitError` until :meth:`close`."""
        await self._backend.isolate()

    async def close(self) -> None:
        """Close the circuit and reset its counts."""
        await self._backend.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {self._backend.describe()})"
