"""The resilient engine: runs an agent through its layers and always ends with
``agent_completed``; ``wrap_engine`` builds one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import (
    ResilienceContext,
    bind_context,
    current_context,
    unbind_context,
)
from netra_resilience.engine._event_log import EventLog, RunLogWriter
from netra_resilience.engine._hooks import Hook, HookFn, HooksLayer
from netra_resilience.engine._run import (
    CANCELLED_MESSAGE,
    Engine,
    EngineLayer,
    EventDelivery,
    EventOptions,
    EventSink,
    EventType,
    RunEvents,
    RunRequest,
    RunResult,
    RunStatus,
    RunSteps,
    Start,
    build_stack,
    is_json_shaped,
    public_error,
)
from netra_resilience.engine._tools import Tool, ToolFn, ToolsLayer
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import to_seconds

L = TypeVar("L")


def _request_of(
    request: RunRequest | Any, user_id: str | None, tenant_id: str | None
) -> RunRequest:
    if not isinstance(request, RunRequest):
        return RunRequest(request, user_id=user_id, tenant_id=tenant_id)
    if user_id is not None or tenant_id is not None:
        raise TypeError("give user_id/tenant_id inside the RunRequest, not beside it")
    return request


class ResilientEngine:
    """Your engine plus its layers; ``await stack.run(request, sink)`` never raises for a
    failed engine (it returns ``status=failed``) and re-raises only cancellation.

    With an ``event_log`` every event of every run is also appended there (in order, off the
    run's path), so a client can resume a run by ``(run_id, last seq)``; :meth:`start` runs
    one detached from any connection (the client follows the log and may drop and come back).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        layers: Sequence[EngineLayer] = (),
        events: EventOptions | None = None,
        clock: Clock | None = None,
        operation_key: str = "agent_run",
        event_log: EventLog | None = None,
    ) -> None:
        self.engine = engine
        given: object = event_log  # typed callers cannot pass a wrong one; others can
        if given is not None and not isinstance(given, EventLog):
            kind = type(given).__name__
            raise InvalidOptionsError("ResilientEngine", "event_log", f"not an EventLog: {kind}")
        self.event_log = event_log
        self.clock = clock or SYSTEM_CLOCK
        self.options = events or EventOptions()
        self.operation_key = operation_key
        self._app, self.layers = build_stack(Start(engine), layers)
        self._flush_timeout = to_seconds(self.options.flush_timeout)
        self._detached: set[asyncio.Task[None]] = set()
        self._started: set[asyncio.Task[RunResult]] = set()

    def layer(self, kind: type[L]) -> L:
        """The first layer of class ``kind`` (e.g. ``HooksLayer``)."""
        for layer in self.layers:
            if isinstance(layer, kind):
                return layer
        raise LookupError(f"no {kind.__name__} in this engine stack")

    async def run(
        self,
        request: RunRequest | Any,
        sink: EventSink | None = None,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        steps: RunSteps | None = None,
        logged: asyncio.Event | None = None,
    ) -> RunResult:
        """Run once; events go to ``sink`` (e.g. ``websocket.send_json``) if given.

        ``request`` is a :class:`RunRequest` or the bare input (``user_id``/``tenant_id`` then
        name the caller: caches and limiters keep one caller's answers from another's).
        ``steps``: how tool calls and :meth:`RunEvents.step` calls execute (a durable
        engine's recorder; default: directly). ``logged`` is set once the run's first event
        is in the event log."""
        return await self._execute(_request_of(request, user_id, tenant_id), sink, logged, steps)

    __call__ = run

    async def _execute(
        self,
        request: RunRequest,
        sink: EventSink | None,
        logged: asyncio.Event | None,
        steps: RunSteps | None = None,
    ) -> RunResult:
        # Inside a request (the ASGI middleware bound one), the run marks the request's own
        # Degradation, so what the agent hit also reaches the Netra-Degraded header.
        outer = current_context()
        context = ResilienceContext(
            self.operation_key,
            user_id=request.user_id,
            tenant_id=request.tenant_id,
            run_id=request.run_id,
            degradation=outer.degradation if outer is not None else None,
        )
        delivery = EventDelivery(sink, self.clock, self.options)
        events = RunEvents(context, delivery, self.clock)
        writer = None
        if self.event_log is not None:
            writer = RunLogWriter(self.event_log, context.degradation, logged)
            events.add_observer(writer)
        token = bind_context(context)
        try:
            if steps is not None:
                events.steps = steps
                await steps.begin(events)
            result = await self._run(request, events, delivery, writer)
            if writer is not None:
                await writer.flush(self.clock, self._flush_timeout)
            return result
        except BaseException as exc:  # cancelled (client gone), or the process is stopping
            if not events.closed:
                data: dict[str, Any] = {"status": RunStatus.FAILED.value}
                if isinstance(exc, asyncio.CancelledError):
                    data["error"] = {"type": "CancelledError", "message": CANCELLED_MESSAGE}
                    data["cancelled"] = True
                else:
                    data["error"] = public_error(exc)
                events.close(EventType.AGENT_COMPLETED, data)
            if delivery.sending:
                self._detach(delivery.flush(self._flush_timeout))
            else:
                delivery.close()
            if writer is not None:
                self._detach(writer.flush(self.clock, self._flush_timeout))
            raise
        finally:
            unbind_context(token)

    async def start(
        self,
        request: RunRequest | Any,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
    ) -> asyncio.Task[RunResult]:
        """Run in the background, not tied to any connection; its events go to the event log.

        Returns once the run's first event is in the log (bounded by ``flush_timeout``), so
        ``event_log.follow(run_id, 0)`` finds the run at once, on any replica sharing the
        log; clients may disconnect and resume. :meth:`aclose` cancels runs still going.
        """
        if self.event_log is None:
            raise InvalidOptionsError(
                "ResilientEngine", "event_log", "start() needs an event log to follow"
            )
        logged = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            self._execute(_request_of(request, user_id, tenant_id), None, logged)
        )
        self._started.add(task)
        task.add_done_callback(self._started.discard)
        waiter = asyncio.ensure_future(logged.wait())
        try:
            async with self.clock.timeout(self._flush_timeout):
                await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            pass  # the log is slow: the run goes on, a follower may have to retry
        finally:
            waiter.cancel()
        return task

    async def _run(
        self,
        request: RunRequest,
        events: RunEvents,
        delivery: EventDelivery,
        writer: RunLogWriter | None,
    ) -> RunResult:
        output: Any = None
        failure: Exception | None = None
        try:
            output = await self._app(request, events)
        except Exception as exc:
            failure = exc
        if writer is not None:  # the log's own degradation belongs in the final status
            await writer.drain(self.clock, self._flush_timeout)
        degradation = events.degradation
        data: dict[str, Any]
        if failure is not None:
            status = RunStatus.FAILED
            data = {"status": status.value, "error": public_error(failure)}
        else:
            status = RunStatus.DEGRADED if degradation else RunStatus.OK
            data = {"status": status.value}
            if self.options.include_output and is_json_shaped(output):
                data["output"] = output
        final = events.close(EventType.AGENT_COMPLETED, data)
        if final is not None and events.observes(EventType.AGENT_COMPLETED):
            await events.observe(final)
        if delivery.sending:  # a send had to wait: finish it (bounded)
            await delivery.flush(self._flush_timeout)
        return RunResult(
            run_id=request.run_id,
            status=status,
            output=output,
            degradation=degradation.as_dict(),
            error_type=type(failure).__name__ if failure is not None else None,
            events=delivery.stats,
            exception=failure,
        )

    def _detach(self, flush: Any) -> None:
        """Finish a cancelled run's delivery in the background (bounded by flush_timeout)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(flush)
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def aclose(self) -> None:
        """Shut down: cancel started runs, finish pending deliveries, then drain each layer."""
        for task in list(self._started):
            task.cancel()
        if self._started:
            await asyncio.gather(*self._started, return_exceptions=True)
        if self._detached:
            await asyncio.gather(*self._detached, return_exceptions=True)
        for layer in self.layers:
            close = getattr(layer, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@overload
def wrap_engine(
    engine: Engine,
    /,
    *,
    hooks: Mapping[str, HookFn] | Collection[Hook] = ...,
    tools: Mapping[str, ToolFn] | Collection[Tool] = ...,
    layers: Sequence[EngineLayer] = ...,
    events: EventOptions | None = ...,
    clock: Clock | None = ...,
    random: Callable[[], float] | None = ...,
    telemetry: TelemetryListener | None = ...,
    hook_queue_size: int = ...,
    event_log: EventLog | None = ...,
) -> ResilientEngine: ...


@overload
def wrap_engine(
    engine: None = None,
    /,
    *,
    hooks: Mapping[str, HookFn] | Collection[Hook] = ...,
    tools: Mapping[str, ToolFn] | Collection[Tool] = ...,
    layers: Sequence[EngineLayer] = ...,
    events: EventOptions | None = ...,
    clock: Clock | None = ...,
    random: Callable[[], float] | None = ...,
    telemetry: TelemetryListener | None = ...,
    hook_queue_size: int = ...,
    event_log: EventLog | None = ...,
) -> Callable[[Engine], ResilientEngine]: ...


def wrap_engine(
    engine: Engine | None = None,
    /,
    *,
    hooks: Mapping[str, HookFn] | Collection[Hook] = (),
    tools: Mapping[str, ToolFn] | Collection[Tool] = (),
    layers: Sequence[EngineLayer] = (),
    events: EventOptions | None = None,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
    telemetry: TelemetryListener | None = None,
    hook_queue_size: int = 1000,
    event_log: EventLog | None = None,
) -> ResilientEngine | Callable[[Engine], ResilientEngine]:
    """Wrap ``engine`` (a plain ``async def`` or an object with ``async __call__``).

    ``hooks``/``tools`` take ``{"name": fn}`` for defaults or ``Hook``/``Tool`` objects to
    tune them; ``layers`` adds your own layers inside hooks and tools (they see
    ``request.tools``); ``event_log`` keeps every run's events for resuming (see
    :meth:`ResilientEngine.start`). Without ``engine`` it returns a decorator::

        @wrap_engine(hooks={"analytics": send_analytics}, tools={"search": search})
        async def agent(request, events): ...
    """
    the_clock = clock or SYSTEM_CLOCK
    stack = [
        EngineLayer(
            HooksLayer,
            hooks=hooks,
            clock=the_clock,
            queue_size=hook_queue_size,
            telemetry=telemetry,
        ),
        EngineLayer(ToolsLayer, tools=tools, clock=the_clock, random=random, telemetry=telemetry),
        *layers,
    ]

    def wrap(target: Engine) -> ResilientEngine:
        return ResilientEngine(
            target, layers=stack, events=events, clock=the_clock, event_log=event_log
        )

    return wrap if engine is None else wrap(engine)
