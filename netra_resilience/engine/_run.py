"""An agent run: its request, events and delivery to the sink, its result, the tools it may
call, and the engine layers it passes through.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeAlias, TypeVar

from netra_resilience.clock import Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import Degradation, DegradationEntry, DegradationReason
from netra_resilience.effects import (
    Effect,
    EffectScope,
    FailureStage,
    bind_effect_scope,
    derive_idempotency_key,
    failure_stage,
    unbind_effect_scope,
    valid_idempotency_key,
)
from netra_resilience.exceptions import (
    BrokenCircuitError,
    BulkheadRejectedError,
    ExecutionRejectedError,
    InvalidOptionsError,
    RateLimitRejectedError,
    TimeoutRejectedError,
)
from netra_resilience.hints import retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.validation import Seconds, duration, integer, set_field, to_seconds

if TYPE_CHECKING:
    from netra_resilience.engine._tools import RegisteredTool, ToolFn


T = TypeVar("T")

EventSink = Callable[[dict[str, Any]], Awaitable[None] | None]
"""Where a run's events go, e.g. ``websocket.send_json``, or a plain function such as
``queue.put_nowait``. Receives one JSON-ready dict per event.

A send starts on the run's own task, in a copy of its context: a sink that returns without
waiting costs no task and no timer. A send that waits continues on a sender task, bounded by
``send_timeout``; so a sink should not tie its first steps to the current task (enter
``asyncio.timeout()`` or an anyio cancel scope before its first ``await``) — wrap such a sink's
body in ``asyncio.wait_for`` or a task of its own."""


class EventType(StrEnum):
    """The five agent events, plus the notice sent when a run first degrades."""

    AGENT_STARTED = "agent_started"
    AGENT_THINKING = "agent_thinking"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_COMPLETED = "agent_completed"
    AGENT_DEGRADED = "agent_degraded"


class RunStatus(StrEnum):
    """The ``status`` of the final ``agent_completed`` event."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Appended by another replica's sweep (``RunLeases``) after this run's replica died."""


def _run_id() -> str:
    return uuid.uuid4().hex


def _no_tools() -> RunTools:

    return RunTools({}, None)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One agent run: the user's input and who asked.

    ``tools`` is filled in by :class:`~netra_resilience.engine.ToolsLayer`; an engine calls
    ``await request.tools.call("search", query=...)`` and gets a typed result back (without
    that middleware every name is an unknown tool).
    """

    input: Any = None
    user_id: str | None = field(default=None, kw_only=True)
    tenant_id: str | None = field(default=None, kw_only=True)
    run_id: str = field(default_factory=_run_id, kw_only=True)
    metadata: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    tools: RunTools = field(default_factory=_no_tools, kw_only=True, repr=False, compare=False)

    def with_tools(self, tools: RunTools) -> RunRequest:
        # The constructor, not dataclasses.replace (which inspects the fields on every call).
        return RunRequest(
            self.input,
            user_id=self.user_id,
            tenant_id=self.tenant_id,
            run_id=self.run_id,
            metadata=self.metadata,
            tools=tools,
        )


class Engine(Protocol):
    """What users write and what every middleware is: ``await engine(request, events)``.

    A plain ``async def engine(request, events)`` satisfies it, and so does an object with an
    ``async def __call__(self, request, events)``.
    """

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any: ...


EngineFn = Callable[[RunRequest, "RunEvents"], Awaitable[Any]]
"""The callable form of :class:`Engine` (what ``wrap_engine`` accepts)."""


_OWNER = "EventOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventOptions:
    """Delivery bounds for one run's events.

    * ``send_timeout``: the most one sink call may take; a timed-out or failed send is retried
      once, and an event that fails twice marks the sink dead for the rest of the run (later
      events are counted as undelivered instead of each waiting out the timeout again).
    * ``queue_size``: events buffered per run while the sink is slow. When full, the oldest
      *intermediate* event (``agent_thinking``, ``tool_*``) is dropped and counted; the
      ``agent_started``, ``agent_degraded`` and final ``agent_completed`` events are never dropped.
    * ``flush_timeout``: how long finishing a run may wait for queued events to be sent.
    * ``include_output``: put the engine's answer in ``agent_completed`` when it is JSON-shaped.
    """

    send_timeout: Seconds = 2.0
    queue_size: int = 256
    flush_timeout: Seconds = 5.0
    include_output: bool = True

    def __post_init__(self) -> None:
        set_field(self, "send_timeout", duration(_OWNER, "send_timeout", self.send_timeout))
        set_field(self, "flush_timeout", duration(_OWNER, "flush_timeout", self.flush_timeout))
        integer(_OWNER, "queue_size", self.queue_size, minimum=1, maximum=1_000_000)


ESSENTIAL_EVENTS = frozenset(
    {EventType.AGENT_STARTED, EventType.AGENT_DEGRADED, EventType.AGENT_COMPLETED}
)
"""Events the full queue never drops: they frame the run and tell the user what degraded."""


@dataclass(slots=True)
class DeliveryStats:
    """What happened to one run's events (returned in :class:`RunResult`)."""

    emitted: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    """Dropped by the full queue (oldest intermediate event first)."""
    failed: int = 0
    """Sent twice without success (timeout or error); the sink is then treated as dead."""
    undelivered: int = 0
    """Still queued when the sink was dead or the flush timed out."""


class Continuation:
    """A sink call that did not finish in its first step: awaiting this drives the rest.

    ``step`` already yielded ``first`` (the future it waits on); the awaiting task takes over
    from there, passing on what it is sent or thrown, so the send goes on exactly as if it had
    been awaited from its start. ``context`` is where its first step ran (the rest must too).
    """

    __slots__ = ("context", "first", "step")

    def __init__(self, step: Any, first: Any, context: contextvars.Context | None) -> None:
        self.step = step
        self.first = first
        self.context = context

    def __await__(self) -> Generator[Any, Any, None]:
        step, value = self.step, self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                step.close()
                raise
            except BaseException as exc:  # a cancellation or the task's own throw: pass it on
                try:
                    value = step.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = step.send(sent)
                except StopIteration:
                    return


class EventDelivery:
    """Orders, buffers and sends one run's events; see :class:`EventOptions` for the bounds.

    A send starts on the emitting task: a sink that finishes without waiting (a plain function,
    an in-memory ``async def``, a socket with room in its buffer) costs no task and no timer.
    Only a send that has to wait is handed to a sender task, which finishes it under
    ``send_timeout`` and sends whatever queued up meanwhile, then ends (the next event starts
    on the emitting task again).
    """

    __slots__ = (
        "_clock",
        "_closed",
        "_dead",
        "_max",
        "_queue",
        "_send_timeout",
        "_sink",
        "_task",
        "stats",
    )

    def __init__(self, sink: EventSink | None, clock: Clock, options: EventOptions) -> None:
        self._sink = sink
        self._clock = clock
        self._send_timeout = to_seconds(options.send_timeout)
        self._max = options.queue_size
        self._queue: deque[dict[str, Any]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._dead = False
        self.stats = DeliveryStats()

    @property
    def sending(self) -> bool:
        """Is a sender task still at work (a send had to wait)?"""
        return self._task is not None

    @property
    def listening(self) -> bool:
        """Is there a sink the next event would go to?"""
        return self._sink is not None and not self._closed

    def put(self, event: dict[str, Any]) -> None:
        """Send or queue ``event`` without waiting (called on the agent's path)."""
        stats = self.stats
        stats.emitted += 1
        sink = self._sink
        if sink is None or self._closed:
            return
        if self._task is None:  # nothing queued or in flight: send it now
            if not self._dead:
                # _begin's common case inline: a sink that is done in its first step.
                context = contextvars.copy_context()
                try:
                    pending = context.run(sink, event)
                    if pending is None:  # a plain function: done
                        stats.sent += 1
                        return
                    step = pending.__await__()
                    first = context.run(step.send, None)
                except StopIteration:
                    stats.sent += 1
                    return
                except (Exception, asyncio.CancelledError):  # raised by the sink at once
                    self._send_now(event, tried=1)  # its retry
                    return
                else:  # it waits: a sender task finishes it, bounded
                    started = Continuation(step, first, context)
                    self._task = asyncio.get_running_loop().create_task(
                        self._send_all(event, started, 2), context=context
                    )
                    return
            self._send_now(event)
            return
        queue = self._queue
        if len(queue) >= self._max and not self._make_room(event):
            self.stats.dropped += 1
            return
        queue.append(event)  # the sender task, busy, takes it next

    def _make_room(self, incoming: dict[str, Any]) -> bool:
        """Drop the oldest intermediate event; essentials may exceed the bound (at most 3)."""
        queue = self._queue
        for index, queued in enumerate(queue):
            if queued["type"] not in ESSENTIAL_EVENTS:
                del queue[index]
                self.stats.dropped += 1
                return True
        return incoming["type"] in ESSENTIAL_EVENTS

    def close(self) -> None:
        """No more events; the sender finishes what is queued, then stops."""
        self._closed = True

    def _begin(
        self, event: dict[str, Any], context: contextvars.Context | None
    ) -> bool | Continuation:
        """Call the sink and run it up to its first wait: True when that sent the event, False
        when it failed at once, else the send still going. ``context``: a copy of the emitting
        task's context to run the sink in (None: the sender task's own)."""
        sink = self._sink
        assert sink is not None
        try:
            if context is None:
                pending: Any = sink(event)
                if pending is None:  # a plain function: done
                    return True
                step = pending.__await__()
                first = step.send(None)
            else:
                pending = context.run(sink, event)
                if pending is None:
                    return True
                step = pending.__await__()
                first = context.run(step.send, None)
        except StopIteration:
            return True
        except (Exception, asyncio.CancelledError):  # raised by the sink itself, synchronously
            return False
        return Continuation(step, first, context)

    def _send_now(self, event: dict[str, Any], tried: int = 0) -> None:
        """Send ``event`` from the emitting task; ``tried``: attempts that already failed."""
        if self._dead and event["type"] != EventType.AGENT_COMPLETED:
            self.stats.undelivered += 1
            return
        attempts = 1 if self._dead else 2
        for attempt in range(tried, attempts):
            if attempt:
                self.stats.retried += 1
            started = self._begin(event, contextvars.copy_context())
            if started is True:
                self.stats.sent += 1
                return
            if started is not False:  # it waits: a sender task finishes it, bounded
                self._task = asyncio.get_running_loop().create_task(
                    self._send_all(event, started, attempts - attempt), context=started.context
                )
                return
        self.stats.failed += 1
        self._dead = True

    async def _send_all(self, event: dict[str, Any], started: Continuation, attempts: int) -> None:
        queue = self._queue
        try:
            if not await self._send(event, attempts=attempts, started=started):
                self.stats.failed += 1
                self._dead = True
            while queue:
                event = queue.popleft()
                final = event["type"] == EventType.AGENT_COMPLETED
                if self._dead and not final:
                    self.stats.undelivered += 1
                    continue
                if not await self._send(event, attempts=1 if self._dead else 2):
                    self.stats.failed += 1
                    self._dead = True
        finally:
            self.stats.undelivered += len(queue)
            queue.clear()
            self._task = None

    async def _send(
        self, event: dict[str, Any], *, attempts: int, started: Continuation | None = None
    ) -> bool:
        for attempt in range(attempts):
            if attempt:
                self.stats.retried += 1
            pending, started = started, None
            if pending is None:
                begun = self._begin(event, None)
                if begun is True:
                    self.stats.sent += 1
                    return True
                if begun is False:
                    continue
                pending = begun
            try:
                async with self._clock.timeout(self._send_timeout):
                    await pending
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    self.stats.undelivered += 1  # the event in flight
                    raise  # our own flush deadline (or shutdown): stop
                continue  # the sink raised CancelledError by itself (a closing socket)
            except Exception:  # includes our own TimeoutError; the sink's errors stay here
                continue
            self.stats.sent += 1
            return True
        return False

    async def flush(self, within: float) -> None:
        """Wait (at most ``within`` seconds on the clock) for queued events to be sent, then stop.

        If the caller is cancelled meanwhile, the sender keeps going (shielded) so the caller
        can hand a fresh :meth:`flush` to a background task: the final event still goes out.
        """
        self.close()
        task = self._task
        if task is None or task.done():
            return
        try:
            async with self._clock.timeout(within):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


RESERVED_EVENTS = frozenset(
    {EventType.AGENT_STARTED, EventType.AGENT_COMPLETED, EventType.AGENT_DEGRADED}
)
"""Emitted by the stack itself, so each appears exactly once where it belongs."""


_current_task = asyncio.current_task


def _cancelling() -> bool:
    task = _current_task()
    return task is not None and task.cancelling() > 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call, as a durable engine sees it when it records the call as a step.

    ``key_given``: the caller passed ``idempotency_key`` itself, vouching that the upstream
    applies the call once per key (a derived key is only a hint to the upstream).
    """

    tool: str
    call_id: str
    effect: Effect
    idempotency_key: str | None = None
    key_given: bool = False

    @property
    def repeatable(self) -> bool:
        """May a recovered run repeat this call after an execution that died mid-call?
        ``read`` always; ``idempotent`` with its key; ``unsafe`` only with a given key."""
        if self.effect is Effect.UNSAFE:
            return self.key_given
        return True


class RunSteps(Protocol):
    """How a run's units of work execute: tool calls, and what the engine passes to
    :meth:`RunEvents.step` (its LLM calls). :data:`DIRECT_STEPS` runs them as they come; a
    durable engine (``netra_resilience.integrations.dbos``) records each one, so that an
    execution recovering the run gets the recorded result instead of running it again.
    """

    @property
    def durable(self) -> bool:
        """True when the run may be re-executed elsewhere after its process dies."""
        ...

    async def begin(self, events: RunEvents) -> None:
        """Called once per execution, before the run's first event."""
        ...

    async def call(
        self, name: str, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: Any
    ) -> T:
        """Run ``fn(*args, **kwargs)`` as the step ``name``."""
        ...

    async def tool(
        self, call: ToolCall, execute: Callable[[], Awaitable[ToolResult]]
    ) -> ToolResult:
        """Run one tool call (``execute`` goes through the tool's pipeline)."""
        ...


class DirectSteps:
    """Runs every step at once, records nothing (the default; stateless)."""

    __slots__ = ()

    @property
    def durable(self) -> bool:
        return False

    async def begin(self, events: RunEvents) -> None:
        return None

    async def call(
        self, name: str, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: Any
    ) -> T:
        return await fn(*args, **kwargs)

    async def tool(
        self, call: ToolCall, execute: Callable[[], Awaitable[ToolResult]]
    ) -> ToolResult:
        return await execute()


DIRECT_STEPS: RunSteps = DirectSteps()


class EventObserver(Protocol):
    """Sees every event of a run (hooks use this). Implementations must not raise."""

    def notify(self, event: Mapping[str, Any]) -> None:
        """Non-blocking; called for every event, even the final one of a cancelled run."""

    async def observe(self, event: Mapping[str, Any]) -> None:
        """Awaited on the run's own path after ``notify`` (never after a cancellation)."""


class RunEvents:
    """The engine's side of event delivery: ``await events("agent_thinking", text="...")``.

    Each event is a dict ``{"type", "run_id", "seq", "degraded", "degradation", "data"}``:
    ``seq`` rises by one per event of the run (so a client can spot a gap and, later, resume),
    and ``degradation`` is a snapshot of the run's flags when the event was emitted (one dict
    shared by the events emitted while the flags did not change: read it, do not modify it).
    The first time each dependency degrades, an ``agent_degraded`` notice (``{"dependency",
    "reason"}``) follows at once (and once more if a tool's call ends ``outcome_unknown``).
    Emitting only queues the event, so it never waits for the user's sink.

    ``steps`` is how the run's units of work execute (:class:`RunSteps`); an execution that
    re-runs a recovered run replays its recorded steps with its earlier events withheld
    (:meth:`replay_through`) until it does something new (:meth:`go_live`).
    """

    __slots__ = (
        "_closed",
        "_degradation",
        "_delivery",
        "_ended_before",
        "_inline",
        "_inline_all",
        "_inline_types",
        "_noticed",
        "_observers",
        "_replay_to",
        "_replaying",
        "_seq",
        "_snapshot",
        "_snapshot_version",
        "_unsubscribe",
        "clock",
        "context",
        "steps",
    )

    def __init__(self, context: ResilienceContext, delivery: EventDelivery, clock: Clock) -> None:
        self.context = context
        self.clock = clock
        self._delivery = delivery
        self._observers: list[EventObserver] = []
        # Observers whose ``observe`` is awaited, and for which event types (all, or some).
        self._inline: list[tuple[EventObserver, frozenset[str] | None]] = []
        self._inline_all = False
        self._inline_types: frozenset[str] = frozenset()
        self._seq = 0
        self._closed = False
        self._noticed: set[str] | None = None  # made on the first degradation notice
        self._degradation = degradation = context.degradation
        # The degradation as events carry it, shared by events while it does not change.
        self._snapshot: tuple[bool, dict[str, str]] = (False, {})
        self._snapshot_version = -1
        self._unsubscribe = degradation.subscribe(self._on_mark)
        self.steps = DIRECT_STEPS
        self._replaying = False
        self._replay_to = 0
        self._ended_before = False

    @property
    def run_id(self) -> str:
        return self.context.run_id or ""

    @property
    def degradation(self) -> Degradation:
        return self.context.degradation

    @property
    def closed(self) -> bool:
        """True once the final event is out (or the run was cancelled): emits are ignored."""
        return self._closed

    @property
    def observed(self) -> bool:
        """Does any observer (hooks, the event log) see this run's events?"""
        return bool(self._observers)

    def observes(self, event_type: str) -> bool:
        """Is there an observer whose :meth:`~EventObserver.observe` wants ``event_type``
        (so :meth:`observe` has something to await)?"""
        return self._inline_all or event_type in self._inline_types

    def add_observer(
        self, observer: EventObserver, *, observes: Collection[str] | None = None
    ) -> None:
        """Send every event to ``observer.notify``; ``observes``: the event types its
        ``observe`` is awaited for (``None``: every type; empty: never)."""
        self._observers.append(observer)
        types = None if observes is None else frozenset(observes)
        if types is None or types:
            self._inline.append((observer, types))
            if types is None:
                self._inline_all = True
            elif self._inline_types:
                self._inline_types |= types
            else:
                self._inline_types = types  # the common case: one observer, no union made

    async def __call__(self, event_type: str, /, **data: Any) -> None:
        """Emit one event; ``data`` becomes its ``"data"`` field."""
        if event_type in RESERVED_EVENTS:
            raise ValueError(f"{event_type!r} is emitted by the engine stack itself")
        # _emit's body, here: one coroutine per event, not two.
        task = _current_task()
        if task is not None and task.cancelling():
            return  # the run is being cancelled: only the final event may still go out
        event = self.emit_nowait(event_type, data)
        if event is not None and (self._inline_all or event_type in self._inline_types):
            await self.observe(event)

    async def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        """``__call__`` once the type is checked: numbered, sent, observed (nothing while
        the run is being cancelled)."""
        task = _current_task()
        if task is not None and task.cancelling():
            return  # the run is being cancelled: only the final event may still go out
        event = self.emit_nowait(event_type, data)
        if event is not None and (self._inline_all or event_type in self._inline_types):
            await self.observe(event)

    async def thinking(self, text: str, **data: Any) -> None:
        await self._emit(EventType.AGENT_THINKING, {"text": text, **data})

    async def step(
        self, name: str, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any
    ) -> T:
        """``await events.step("llm", llm.answer, message)``: one unit of the run's work (an
        LLM call), run through :attr:`steps`. Directly by default; under a durable engine a
        recorded step, so a recovered run gets its result instead of calling again."""
        return await self.steps.call(name, fn, args, kwargs)

    def replay_through(self, last_seq: int, *, ended: bool = False) -> None:
        """This execution re-runs a run whose events up to ``last_seq`` an earlier execution
        delivered: events are numbered but withheld until :meth:`go_live`, then numbered
        after ``last_seq``. ``ended``: that earlier execution's final event is among them, so
        nothing of this one is delivered."""
        self._replaying = True
        self._replay_to = last_seq
        self._ended_before = ended

    def go_live(self) -> None:
        """The run does something no earlier execution finished (a step runs for real): its
        events from here on are new (no-op outside a replay)."""
        if self._replaying and not self._ended_before:
            self._replaying = False
            self._seq = max(self._seq, self._replay_to)

    def emit_nowait(self, event_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Number, build and send (or queue) an event; notify observers. ``None`` after close,
        or when no sink or observer would see it (then it is numbered and counted, not built)."""
        if self._closed:
            return None
        self._seq += 1
        if self._replaying:
            if self._seq <= self._replay_to or self._ended_before:
                return None  # an earlier execution of the run delivered it
            # Past the log's top while replaying recorded steps: the earlier execution made
            # this event but died before it reached the log, so it is new (withheld, the log
            # had a gap: the next live event came after it).
            self._replaying = False
        delivery = self._delivery
        if not self._observers and not delivery.listening:
            delivery.stats.emitted += 1  # numbered and counted, but no one would read it
            return None
        degradation = self._degradation
        if degradation.version != self._snapshot_version:
            self._snapshot_version = degradation.version
            self._snapshot = (bool(degradation), degradation.as_dict())
        degraded, snapshot = self._snapshot
        event = {
            "type": str(event_type),
            "run_id": self.context.run_id,
            "seq": self._seq,
            "degraded": degraded,
            "degradation": snapshot,
            "data": data,
        }
        delivery.put(event)
        for observer in self._observers:
            try:
                observer.notify(event)
            except Exception:
                continue
        return event

    async def observe(self, event: Mapping[str, Any]) -> None:
        """Run the observers' inline part for ``event`` (hooks awaited on the golden path)."""
        event_type = event["type"]
        for observer, types in self._inline:
            if types is not None and event_type not in types:
                continue
            try:
                await observer.observe(event)
            except Exception:  # an observer must never break the run it watches
                continue

    def _on_mark(self, degradation: Degradation, entry: DegradationEntry) -> None:
        notice = entry.dependency
        if entry.reason == DegradationReason.OUTCOME_UNKNOWN:
            # News even after the same tool's timeout was noticed: the user must check.
            notice = f"{notice}\x1f{entry.reason}"
        noticed = self._noticed
        if noticed is None:
            noticed = self._noticed = set()
        if notice in noticed or _cancelling():
            return
        noticed.add(notice)
        self.emit_nowait(
            EventType.AGENT_DEGRADED, {"dependency": entry.dependency, "reason": entry.reason}
        )

    def close(self, final_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Emit the final event and refuse every later one."""
        self.go_live()  # a replay that reached the end: the final event is new
        event = self.emit_nowait(final_type, data)
        self._closed = True
        self._unsubscribe()
        self._delivery.close()
        return event


FAILED_MESSAGE = "The agent could not complete this run."
CANCELLED_MESSAGE = "The run was cancelled."


def public_error(exc: BaseException) -> dict[str, str]:
    """What a user may see about a failure: the exception's type name and a generic message.

    Never the message text or the traceback: those routinely carry API keys, URLs with
    tokens, prompts and internal paths.
    """
    return {"type": type(exc).__name__, "message": FAILED_MESSAGE}


def is_json_shaped(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended. The engine's exception stays here (for your logs), never in events."""

    run_id: str
    status: RunStatus
    output: Any = None
    degradation: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    events: DeliveryStats = field(default_factory=DeliveryStats)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True unless the run failed (a degraded run still answered)."""
        return self.status is not RunStatus.FAILED

    def unwrap(self) -> Any:
        """The engine's answer, or raise the engine's exception."""
        if self.exception is not None:
            raise self.exception
        return self.output


class ToolFailureReason(StrEnum):
    """Why a tool call gave no answer. ``outcome_unknown``: the request may have reached the
    upstream and no answer came (a timeout, a reset) for a tool with a side effect, so it may
    have taken effect; it was not repeated blindly."""

    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    TIMEOUT = "timeout"
    BULKHEAD_FULL = "bulkhead_full"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN_TOOL = "unknown_tool"
    OUTCOME_UNKNOWN = "outcome_unknown"


_MESSAGES = {
    ToolFailureReason.RATE_LIMITED: "The tool is rate limited; try again later.",
    ToolFailureReason.CIRCUIT_OPEN: "The tool is temporarily unavailable.",
    ToolFailureReason.TIMEOUT: "The tool did not answer in time.",
    ToolFailureReason.BULKHEAD_FULL: "The tool is busy.",
    ToolFailureReason.REJECTED: "The tool call was not attempted.",
    ToolFailureReason.FAILED: "The tool call failed.",
    ToolFailureReason.UNKNOWN_TOOL: "No tool with this name is available.",
    ToolFailureReason.OUTCOME_UNKNOWN: (
        "The tool call may have taken effect, but no answer came; check before calling it again."
    ),
}


@dataclass(frozen=True, slots=True)
class ToolOk(Generic[T]):
    """A tool's answer."""

    tool: str
    value: T
    call_id: str = ""
    idempotency_key: str | None = field(default=None, compare=False)
    ok: ClassVar[Literal[True]] = True


@dataclass(frozen=True, slots=True)
class ToolFailure:
    """Why a tool gave no answer, in words safe to show a user or feed back to the LLM.

    ``message`` is generic per ``reason`` (never the exception's text, which may carry
    secrets); ``error_type`` is the exception's class name; ``retry_after`` the seconds after
    which trying again may work, when known. ``idempotency_key``: the key the call carried
    (calling an ``idempotent`` tool again with it cannot apply the effect twice).
    """

    tool: str
    reason: ToolFailureReason
    message: str
    retry_after: float | None = None
    error_type: str | None = None
    call_id: str = ""
    idempotency_key: str | None = field(default=None, compare=False)
    ok: ClassVar[Literal[False]] = False

    @property
    def outcome_unknown(self) -> bool:
        """The call may have taken effect upstream (``reason`` is ``outcome_unknown``)."""
        return self.reason is ToolFailureReason.OUTCOME_UNKNOWN

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, e.g. the content of the tool message sent back to the model."""
        data: dict[str, Any] = {"tool": self.tool, "ok": False, "error": self.reason.value}
        data["message"] = self.message
        if self.retry_after is not None:
            data["retry_after"] = round(self.retry_after, 3)
        return data

    @classmethod
    def unknown(cls, tool: str, call_id: str = "") -> ToolFailure:
        reason = ToolFailureReason.UNKNOWN_TOOL
        return cls(tool, reason, _MESSAGES[reason], call_id=call_id)

    @classmethod
    def interrupted(cls, call: ToolCall) -> ToolFailure:
        """``outcome_unknown`` for a call that started in an execution of the run that died
        before the call answered (a recovered run does not repeat it blindly)."""
        reason = ToolFailureReason.OUTCOME_UNKNOWN
        return cls(
            call.tool,
            reason,
            _MESSAGES[reason],
            error_type="ExecutionLost",
            call_id=call.call_id,
            idempotency_key=call.idempotency_key,
        )

    @classmethod
    def from_outcome(
        cls,
        tool: str,
        outcome: Outcome[Any],
        call_id: str = "",
        *,
        outcome_unknown: bool = False,
        idempotency_key: str | None = None,
    ) -> ToolFailure:
        exc = outcome.exception
        assert exc is not None
        if isinstance(exc, ExecutionRejectedError):
            reason = _reason_of(exc)
            retry_after = exc.retry_after
        else:
            reason = ToolFailureReason.FAILED
            retry_after = retry_after_of(outcome)  # an upstream hint (a 429's Retry-After)
        if outcome_unknown:
            reason = ToolFailureReason.OUTCOME_UNKNOWN
        return cls(
            tool,
            reason,
            _MESSAGES[reason],
            retry_after,
            type(exc).__name__,
            call_id,
            idempotency_key,
        )


def _reason_of(exc: ExecutionRejectedError) -> ToolFailureReason:
    if isinstance(exc, RateLimitRejectedError):
        return ToolFailureReason.RATE_LIMITED
    if isinstance(exc, BrokenCircuitError):
        return ToolFailureReason.CIRCUIT_OPEN
    if isinstance(exc, TimeoutRejectedError):
        return ToolFailureReason.TIMEOUT
    if isinstance(exc, BulkheadRejectedError):
        return ToolFailureReason.BULKHEAD_FULL
    return ToolFailureReason.REJECTED


ToolResult: TypeAlias = ToolOk[Any] | ToolFailure
"""What ``request.tools.call(...)`` returns; ``if result.ok:`` narrows it to :class:`ToolOk`."""


class RunTools:
    """One run's tools: ``await request.tools.call("search", query="...")`` -> ToolResult.

    Emits ``tool_executing`` and ``tool_completed`` around each call. Never raises for a
    failed, rejected or unknown tool: the agent gets a :class:`ToolFailure` to reason about.
    """

    __slots__ = ("_calls", "_events", "_tools")

    def __init__(self, tools: Mapping[str, RegisteredTool], events: RunEvents | None) -> None:
        self._tools = tools
        self._events = events
        self._calls = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def call(
        self,
        name: str,
        /,
        *args: Any,
        call_id: str | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> ToolResult:
        """Call tool ``name`` with ``args``/``kwargs``.

        ``call_id`` (default ``<name>-<n>``, the n-th call of the run) names the call in events
        and results; give the model's tool-call id to keep it stable when a run is resumed.
        ``idempotency_key`` (default: derived from the run id and ``call_id``) is the same for
        every attempt of the call; a tool whose function takes an ``idempotency_key``
        parameter receives it, and the resilient HTTP transports send it as the
        ``Idempotency-Key`` header. ``read`` tools get none. A kwarg named ``context`` is
        reserved.
        """
        self._calls += 1
        if call_id is None:
            call_id = f"{name}-{self._calls}"
        elif not isinstance(call_id, str) or not call_id:
            raise InvalidOptionsError("RunTools.call", "call_id", "must be a non-empty string")
        if idempotency_key is not None and not valid_idempotency_key(idempotency_key):
            raise InvalidOptionsError(
                "RunTools.call", "idempotency_key", "must be 1-255 visible ASCII characters"
            )
        events = self._events
        entry = self._tools.get(name)
        if events is not None:
            data: dict[str, Any] = {"tool": name, "call_id": call_id}
            if entry is not None:
                data["effect"] = entry.effect_value
            await events._emit(EventType.TOOL_EXECUTING, data)
        result: ToolResult
        if entry is None or events is None:
            result = ToolFailure.unknown(name, call_id)
        else:
            effect = entry.effect
            key_given = idempotency_key is not None
            if idempotency_key is None and entry.needs_key:
                idempotency_key = derive_idempotency_key(events.run_id, call_id)
            steps = events.steps
            if steps is DIRECT_STEPS:
                result = await self._run(entry, events, call_id, idempotency_key, args, kwargs)
            else:
                call = ToolCall(name, call_id, effect, idempotency_key, key_given)
                result = await steps.tool(
                    call,
                    functools.partial(
                        self._run, entry, events, call_id, idempotency_key, args, kwargs
                    ),
                )
        if events is not None:
            data = {"tool": name, "call_id": call_id, "ok": result.ok}
            if isinstance(result, ToolFailure):
                data["error"] = result.reason.value
                if result.outcome_unknown:
                    data["outcome_unknown"] = True
                if result.retry_after is not None:
                    data["retry_after"] = round(result.retry_after, 3)
            await events._emit(EventType.TOOL_COMPLETED, data)
        return result

    async def _run(  # noqa: PLR0917 - private, called once
        self,
        entry: RegisteredTool,
        events: RunEvents,
        call_id: str,
        idempotency_key: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> ToolResult:
        tool = entry.tool
        effect = tool.effect
        name = tool.name
        if tool.takes_idempotency_key:
            kwargs["idempotency_key"] = idempotency_key
        context = events.context
        scope = EffectScope(effect, idempotency_key, call_id)
        token = bind_effect_scope(scope)
        try:
            outcome = await entry.pipeline.execute_outcome(
                _attempt, scope, tool.fn, args, kwargs, context=context
            )
        finally:
            unbind_effect_scope(token)
        exc = outcome.exception
        if exc is None:
            return ToolOk(name, outcome.result, call_id, idempotency_key)
        # A side effect that may have happened is never reported as a plain failure: the
        # agent must check before repeating it (a read has nothing to check).
        unknown = effect.needs_key and failure_stage(exc) is FailureStage.OUTCOME_UNKNOWN
        if unknown:
            context.degradation.mark(name, DegradationReason.OUTCOME_UNKNOWN)
        elif not isinstance(exc, ExecutionRejectedError):
            context.degradation.mark(name, DegradationReason.ERROR)
        return ToolFailure.from_outcome(
            name, outcome, call_id, outcome_unknown=unknown, idempotency_key=idempotency_key
        )


async def _attempt(
    scope: EffectScope, fn: ToolFn, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """One attempt of a tool call: the per-request keys start over (same requests, same keys)."""
    scope.begin_attempt()
    return await fn(*args, **kwargs)


class EngineLayer:
    """A recipe for one layer: ``cls(app, **options)`` is built once per stack, not per run.

    Built once so that what a layer owns (a hook's breaker, a tool's rate limiter) is shared by
    every run and every user that goes through the stack.
    """

    __slots__ = ("cls", "options")

    def __init__(self, cls: Callable[..., Engine], /, **options: Any) -> None:
        if not callable(cls):
            raise TypeError(f"EngineLayer needs a class or factory, got {type(cls).__name__}")
        self.cls = cls
        self.options = options

    def build(self, app: Engine) -> Engine:
        return self.cls(app, **self.options)

    def __repr__(self) -> str:
        name = getattr(self.cls, "__name__", repr(self.cls))
        opts = ", ".join(f"{key}=..." for key in self.options)
        return f"EngineLayer({name}{', ' if opts else ''}{opts})"


class PassThroughLayer:
    """Optional base class: stores ``app`` and passes runs through; override ``__call__``.

    ``aclose()`` is called on every layer when the stack shuts down (drain queues there).
    """

    def __init__(self, app: Engine) -> None:
        self.app = app

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        return await self.app(request, events)

    async def aclose(self) -> None:
        return None


class Start:
    """The innermost layer: ``agent_started`` goes out once every middleware has set up
    (registered its hooks), right before the engine runs."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        started = events.emit_nowait(EventType.AGENT_STARTED, {})
        if started is not None and events.observes(EventType.AGENT_STARTED):
            await events.observe(started)
        return await self.engine(request, events)


def build_stack(engine: Engine, middleware: Sequence[EngineLayer]) -> tuple[Engine, list[Engine]]:
    """Wrap ``engine`` in ``middleware`` (first = outermost); return the entry and the layers."""
    app = engine
    layers: list[Engine] = []
    for recipe in reversed(middleware):
        if not isinstance(recipe, EngineLayer):
            raise TypeError(f"expected EngineLayer(cls, **options), got {type(recipe).__name__}")
        app = recipe.build(app)
        layers.append(app)
    layers.reverse()
    return app, layers
