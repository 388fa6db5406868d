"""Hooks (analytics, monitoring): each behind its own breaker and timeout, skipped while
open, run in a bounded background queue so they never delay the user.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import KW_ONLY, dataclass
from types import MappingProxyType
from typing import Any

from netra_resilience.circuit_breaker import (
    CircuitBreakerOptions,
    CircuitBreakerStrategy,
    CircuitState,
)
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, bind_context, unbind_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.engine._run import (
    Continuation,
    Engine,
    PassThroughLayer,
    RunEvents,
    RunRequest,
)
from netra_resilience.exceptions import (
    BrokenCircuitError,
    InvalidOptionsError,
    TimeoutRejectedError,
)
from netra_resilience.health import Criticality
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions
from netra_resilience.validation import Seconds, duration, integer, set_field, to_seconds

HookFn = Callable[[Mapping[str, Any]], Awaitable[object]]
"""``async def hook(event) -> None``: receives each (read-only) event it subscribed to."""

ALL_EVENTS: frozenset[str] = frozenset()
"""``Hook(events=ALL_EVENTS)`` (the default): every event of the run."""

_OWNER = "Hook"


def _criticality(value: object) -> Criticality:
    try:
        return Criticality(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(c.value for c in Criticality)
        raise InvalidOptionsError(_OWNER, "criticality", f"must be one of {allowed}") from None


def default_hook_breaker() -> CircuitBreakerOptions:
    """Open after half of at least 3 calls in 30 s failed; stay open 30 s."""
    return CircuitBreakerOptions(
        failure_ratio=0.5, minimum_throughput=3, sampling_duration=30.0, break_duration=30.0
    )


@dataclass(frozen=True, slots=True)
class Hook:
    """A named hook: ``Hook("analytics", send_event, timeout=0.5)``.

    * ``background=True`` (default): fire-and-forget through the bounded hook queue; the run
      never waits for it. ``False``: awaited on the run's path (for hooks whose effect must
      happen before the run moves on), bounded by ``timeout`` and skipped while open.
    * ``events``: the event types that trigger the hook (empty = all).
    * ``criticality``: how much the service depends on it (reported to health, not enforced
      here: a hook never fails a run).
    """

    name: str
    fn: HookFn
    _: KW_ONLY
    timeout: Seconds = 1.0
    background: bool = True
    events: Collection[str] = ALL_EVENTS
    criticality: Criticality | str = Criticality.OPTIONAL
    breaker: CircuitBreakerOptions | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidOptionsError("Hook", "name", "must be a non-empty string")
        if not callable(self.fn):
            raise InvalidOptionsError(
                "Hook", "fn", f"must be an async callable, got {type(self.fn).__name__}"
            )
        set_field(self, "timeout", duration(_OWNER, "timeout", self.timeout))
        set_field(self, "events", frozenset(str(e) for e in self.events))
        set_field(self, "criticality", _criticality(self.criticality))
        if self.breaker is None:
            set_field(self, "breaker", default_hook_breaker())

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


def as_hooks(hooks: Mapping[str, HookFn] | Collection[Hook]) -> tuple[Hook, ...]:
    """Accept ``{"analytics": fn}`` (defaults) or ``[Hook(...), ...]``; names must be unique."""
    items = (
        tuple(Hook(name, fn) for name, fn in hooks.items())
        if isinstance(hooks, Mapping)
        else tuple(hooks)
    )
    names = [hook.name for hook in items]
    if len(set(names)) != len(names):
        raise InvalidOptionsError("wrap_engine", "hooks", f"names must be unique, got {names}")
    return items


HookJob = tuple[
    Callable[..., Awaitable[object] | None], tuple[Any, ...], Callable[..., None] | None
]


class HookQueue:
    """Bounded FIFO served by ``workers`` tasks; ``aclose()`` drains it on shutdown.

    Cheap on the run's path: offering a job is a queue put that wakes at most one idle
    worker. A worker runs each job up to its first wait at once; jobs that finish without
    waiting (most hooks hand off to a buffer) go by one after another, and a job that has to
    wait first wakes another idle worker for the rest of the queue.
    """

    __slots__ = (
        "_clock",
        "_closing",
        "_idle",
        "_jobs",
        "_max",
        "_waking",
        "_worker_count",
        "_workers",
        "abandoned",
        "dropped",
        "processed",
    )

    def __init__(self, *, max_size: int = 1000, workers: int = 2, clock: Clock | None = None):
        self._max = integer("HookQueue", "max_size", max_size, minimum=1)
        self._worker_count = integer("HookQueue", "workers", workers, minimum=1, maximum=64)
        self._clock = clock or SYSTEM_CLOCK
        self._jobs: deque[HookJob] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = 0  # workers woken that have not resumed yet
        self._workers: list[asyncio.Task[None]] = []
        self._closing = False
        self.dropped = 0
        """Jobs dropped because the queue was full (or already shut down)."""
        self.processed = 0
        self.abandoned = 0
        """Jobs still queued when the drain deadline passed."""

    def __len__(self) -> int:
        return len(self._jobs)

    def offer(
        self,
        fn: Callable[..., Awaitable[object] | None],
        *args: Any,
        on_drop: Callable[..., None] | None = None,
    ) -> None:
        """Queue ``fn(*args)``; never waits. Drops the oldest job when full.

        ``fn`` returns an awaitable (an ``async def``), or ``None`` when it did all its work
        in the call. ``on_drop`` is called with ``args`` if this job is dropped, e.g. to mark the
        run whose hook call it was; it must not raise.
        """
        if self._closing:
            self.dropped += 1
            if on_drop is not None:
                on_drop(*args)
            return
        jobs = self._jobs
        dropped = None
        if len(jobs) >= self._max:
            dropped = jobs.popleft()
            self.dropped += 1
        jobs.append((fn, args, on_drop))
        if not self._workers:
            self._start()
        elif not self._waking:
            self._wake()
        if dropped is not None and dropped[2] is not None:
            dropped[2](*dropped[1])  # last: it may emit an event, which may offer again

    def _wake(self) -> None:
        """Wake one idle worker, if any."""
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                return

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._worker_count):
            # An empty contextvars.Context: a worker must not inherit the ResilienceContext of
            # whichever run happened to start it (each job carries its own run's context).
            task = loop.create_task(self._work(), context=contextvars.Context())
            self._workers.append(task)

    async def _work(self) -> None:
        jobs = self._jobs
        loop = asyncio.get_running_loop()
        while True:
            if not jobs:
                if self._closing:
                    return
                waiter = loop.create_future()
                self._idle.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter.done() and not waiter.cancelled():
                        self._waking -= 1
                continue
            fn, args, _ = jobs.popleft()
            try:
                pending = fn(*args)
                if pending is None:  # the job did its work in the call
                    self.processed += 1
                    continue
                step = pending.__await__()
                first = step.send(None)
            except StopIteration:
                pass  # done without waiting
            except (Exception, asyncio.CancelledError):
                pass  # raised by the job itself, synchronously: jobs handle their own failures
            else:
                if jobs:
                    self._wake()  # this job waits: the rest of the queue need not
                try:
                    await Continuation(step, first, None)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # the worker itself is being stopped (drain deadline)
                    # else the job raised it by itself (a closing socket): keep serving
                except Exception:  # jobs handle their own failures
                    pass
            self.processed += 1

    async def aclose(self, within: float | None = 5.0) -> None:
        """Stop accepting jobs, run what is queued (at most ``within`` s on the clock), stop."""
        self._closing = True
        while self._idle:
            self._wake()
        workers = [task for task in self._workers if not task.done()]
        if not workers:
            return
        try:
            async with self._clock.timeout(within):
                await asyncio.gather(*(asyncio.shield(task) for task in workers))
        except TimeoutError:
            self.abandoned += len(self._jobs)
            self._jobs.clear()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


_BLOCKED = (CircuitState.OPEN, CircuitState.ISOLATED)


def _resume(pending: Continuation) -> Continuation:
    """The rest of a hook call that began outside the pipeline (awaiting it drives it)."""
    return pending


async def _raise(exc: Exception) -> None:
    """A hook call that failed in its first step, replayed through the pipeline to count it."""
    raise exc


class _Registered:
    """A hook with its pipeline and breaker, built once per stack."""

    __slots__ = ("breaker", "events", "fn", "hook", "name", "pipeline")

    def __init__(self, hook: Hook, pipeline: Pipeline) -> None:
        self.hook = hook
        self.name = hook.name
        self.fn = hook.fn
        self.events: frozenset[str] | None = frozenset(hook.events) or None  # None: every one
        self.pipeline = pipeline
        breaker = pipeline.find(CircuitBreakerStrategy)
        assert breaker is not None  # the middleware always builds one
        self.breaker = breaker

    async def call(
        self, fn: Callable[[Any], Awaitable[object]], arg: Any, context: ResilienceContext
    ) -> bool:
        """``fn(arg)`` through the pipeline; never raises. Marks the run's degradation and
        returns False on failure."""
        outcome = await self.pipeline.execute_outcome(fn, arg, context=context)
        exc = outcome.exception
        if exc is None:
            return True
        if isinstance(exc, BrokenCircuitError):
            context.degradation.mark(self.name, DegradationReason.SKIPPED)
        elif not isinstance(exc, TimeoutRejectedError):  # the timeout strategy marked it
            context.degradation.mark(self.name, DegradationReason.ERROR)
        return False


class _RunHooks:
    """One run's view of the hooks (an :class:`EventObserver`)."""

    __slots__ = ("_context", "_dropped", "_failed", "_job", "_owner")

    def __init__(self, owner: HooksLayer, context: ResilienceContext) -> None:
        self._owner = owner
        self._context = context
        self._failed: set[str] | None = None  # hooks that failed in this run: skipped after
        self._job = self._begin  # bound once per run, not once per event
        self._dropped = self._mark_dropped

    def _skip(self, hook: _Registered) -> bool:
        """Skip ``hook`` (and mark it) when it failed in this run or its breaker is open."""
        failed = self._failed
        if (failed is not None and hook.name in failed) or (
            hook.breaker.inline_epoch() < 0 and hook.breaker.state in _BLOCKED
        ):
            self._context.degradation.mark(hook.name, DegradationReason.SKIPPED)
            return True
        return False

    def _begin(self, hook: _Registered, event: Mapping[str, Any]) -> Awaitable[None] | None:
        """Call ``hook`` for ``event`` up to its first wait: ``None`` when that was all (done,
        or skipped), else what finishes it.

        A closed plain breaker lets a call that finishes without waiting through with one
        check and counts its success, as the pipeline would; a call that waits or fails
        there goes on through the pipeline (breaker, timeout) for the rest.
        """
        failed = self._failed
        breaker = hook.breaker
        epoch = breaker.inline_epoch()
        if (failed is not None and hook.name in failed) or (
            epoch < 0 and breaker.state in _BLOCKED
        ):
            self._context.degradation.mark(hook.name, DegradationReason.SKIPPED)
            return None
        if epoch < 0:  # half-open, or a breaker that needs the pipeline for every call
            return self._finish(hook, hook.fn, event)
        token = bind_context(self._context)  # the hook sees its run's context
        try:
            step = hook.fn(event).__await__()
            first = step.send(None)
        except StopIteration:
            breaker.count_success(epoch)
            return None
        except Exception as exc:
            return self._finish(hook, _raise, exc)
        finally:
            unbind_context(token)
        return self._finish(hook, _resume, Continuation(step, first, None))

    async def _finish(
        self, hook: _Registered, fn: Callable[[Any], Awaitable[object]], arg: Any
    ) -> None:
        if not await hook.call(fn, arg, self._context):
            if self._failed is None:
                self._failed = set()
            self._failed.add(hook.name)

    def notify(self, event: Mapping[str, Any]) -> None:
        owner = self._owner
        event_type = event["type"]
        view: Mapping[str, Any] | None = None
        for hook in owner.background:
            events = hook.events
            if (events is None or event_type in events) and not self._skip(hook):
                if view is None:
                    view = MappingProxyType(event)
                owner.queue.offer(self._job, hook, view, on_drop=self._dropped)

    def _mark_dropped(self, hook: _Registered, event: Mapping[str, Any]) -> None:
        """The full hook queue dropped one of this run's calls of ``hook``."""
        self._context.degradation.mark(hook.name, DegradationReason.SKIPPED)

    async def observe(self, event: Mapping[str, Any]) -> None:
        event_type = event["type"]
        view: Mapping[str, Any] | None = None
        for hook in self._owner.inline:
            events = hook.events
            if events is None or event_type in events:
                if view is None:
                    view = MappingProxyType(event)
                pending = self._begin(hook, view)
                if pending is not None:
                    await pending


class HooksLayer(PassThroughLayer):
    """``EngineLayer(HooksLayer, hooks=[Hook("analytics", send)], clock=clock)``.

    Hooks see every event of every run (filtered by ``Hook.events``). Background hooks share
    one bounded :class:`HookQueue`; ``aclose()`` drains it (at most ``drain_timeout``).
    """

    def __init__(
        self,
        app: Engine,
        *,
        hooks: Mapping[str, HookFn] | Collection[Hook] = (),
        clock: Clock | None = None,
        queue_size: int = 1000,
        workers: int = 2,
        drain_timeout: Seconds = 5.0,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        super().__init__(app)
        self.clock = clock or SYSTEM_CLOCK
        self.queue = HookQueue(max_size=queue_size, workers=workers, clock=self.clock)
        self.drain_timeout = to_seconds(drain_timeout)
        self.hooks: dict[str, _Registered] = {}
        for hook in as_hooks(hooks):
            assert hook.breaker is not None
            pipeline = (
                PipelineBuilder(hook.name, clock=self.clock, telemetry=telemetry)
                .add_circuit_breaker(hook.breaker)
                .add_timeout(TimeoutOptions(timeout=hook.timeout))
                .build()
            )
            self.hooks[hook.name] = _Registered(hook, pipeline)
        self.background = tuple(h for h in self.hooks.values() if h.hook.background)
        self.inline = tuple(h for h in self.hooks.values() if not h.hook.background)
        # The event types an inline hook awaits (None: every type): the run awaits no
        # observe() for the others.
        self._observes: frozenset[str] | None = frozenset()
        for registered in self.inline:
            if registered.events is None:
                self._observes = None
                break
            self._observes |= registered.events

    def breaker(self, name: str) -> CircuitBreakerStrategy:
        """The named hook's breaker (for health, or to isolate a hook by hand)."""
        return self.hooks[name].breaker

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        if self.hooks:
            events.add_observer(_RunHooks(self, events.context), observes=self._observes)
        return await self.app(request, events)

    async def aclose(self) -> None:
        await self.queue.aclose(self.drain_timeout)
