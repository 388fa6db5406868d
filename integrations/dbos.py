"""Durable runs on DBOS: a run is a DBOS workflow, each tool call and each
``events.step(...)`` call (the engine's LLM calls) a DBOS step that still goes through the
run's pipelines (breakers, stale answers, degraded flags apply inside the step).

When the replica running a workflow dies, another replica recovers it (the run ledger's
sweep hands it over: :meth:`DurableEngine.recover` is ``RunLeases(recover=...)``) and the
workflow continues from its last completed step:

* a completed step is not executed again: its recorded result (and the degradation marks it
  made) is replayed;
* a tool call whose step started but did not complete is repeated only when that is safe:
  ``read`` tools, ``idempotent`` tools (with the same idempotency key, derived from the run
  id and call id, so stable across recovery) and ``unsafe`` calls given an explicit key;
  any other ``unsafe`` call ends ``outcome_unknown`` (it may have taken effect);
* events continue in the run's event log with the same ``seq`` numbering: what the dead
  execution delivered is withheld during the replay (no duplicates), new events follow the
  log's last ``seq`` (no gaps), and a run whose final event is already in the log is not
  run again.

DBOS is configured and launched by the application (``DBOS(config=...)``, ``DBOS.launch()``
inside the running event loop, after building every :class:`DurableEngine`). Give each
replica its own DBOS ``executor_id`` equal to its ``RunLeases.owner``: the sweep resumes a
workflow only when its executor is the dead owner. Requires the ``dbos`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import pickle
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from netra_resilience.integrations import missing_extra

try:
    from dbos import DBOS, SetWorkflowID, StepOptions, StepReservation, WorkflowHandleAsync
except ImportError as error:  # the extra is not installed
    raise missing_extra("dbos", error) from error

from netra_resilience.degradation import Degradation, DegradationEntry, DegradationReason
from netra_resilience.effects import Effect
from netra_resilience.engine import (
    EventLog,
    LedgerEntry,
    ResilientEngine,
    RunEvents,
    RunLeases,
    RunRequest,
    ToolCall,
    ToolFailure,
    ToolResult,
)
from netra_resilience.exceptions import InvalidOptionsError, NetraError
from netra_resilience.validation import to_seconds

__all__ = ["DurableEngine", "StepFailedError"]

_LOG = logging.getLogger("netra_resilience.dbos")
_OWNER = "DurableEngine"
_FINAL_EVENT = "agent_completed"
T = TypeVar("T")

Mark = tuple[str, str]
Record = tuple[list[Mark], Any, BaseException | None]
"""What a step records: the degradation marks it made, its value, or its error."""


class StepFailedError(NetraError):
    """A recorded step failed with an exception that could not be recorded as itself (not
    picklable); replayed in its place, naming the original type."""

    def __init__(self, error_type: str) -> None:
        super().__init__(f"the step failed with {error_type}")
        self.error_type = error_type


def _recordable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return StepFailedError(type(exc).__name__)
    return exc


class _DbosSteps:
    """One execution's steps: each is recorded by DBOS under the running workflow."""

    __slots__ = ("_events", "_last_seq")

    def __init__(self, last_seq: int) -> None:
        self._last_seq = last_seq
        self._events: RunEvents | None = None

    @property
    def durable(self) -> bool:
        return True

    async def begin(self, events: RunEvents) -> None:
        self._events = events
        if self._last_seq:
            events.replay_through(self._last_seq)

    def _live(self) -> Degradation:
        events = self._events
        assert events is not None, "begin() comes first"
        events.go_live()
        return events.degradation

    async def _recorded(
        self,
        name: str,
        work: Callable[[], Awaitable[Any]],
        slot: StepReservation | None = None,
    ) -> Any:
        """Run ``work`` as the DBOS step ``name`` (at the reserved ``slot``), or replay what an
        earlier execution recorded."""
        ran = False
        live_error: BaseException | None = None

        async def step() -> Record:
            nonlocal ran, live_error
            ran = True
            degradation = self._live()
            marks: list[Mark] = []

            def note(_: Degradation, entry: DegradationEntry) -> None:
                marks.append((entry.dependency, entry.reason))

            unsubscribe = degradation.subscribe(note)
            try:
                return (marks, await work(), None)
            except Exception as exc:  # recorded: a replay fails the same way
                live_error = exc
                return (marks, None, _recordable(exc))
            finally:
                unsubscribe()

        options: StepOptions = {"name": name, "retries_allowed": False}  # ours retry
        if slot is None:
            marks, value, error = await DBOS.run_step_async(options, step)
        else:
            marks, value, error = await slot.run_async(options, step)
        if ran:
            if live_error is not None:
                raise live_error
            return value
        events = self._events
        assert events is not None
        for dependency, reason in marks:  # the flags (and notices) the step raised back then
            events.degradation.mark(dependency, reason)
        if error is not None:
            raise error
        return value

    async def call(
        self, name: str, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: Any
    ) -> T:
        result: T = await self._recorded(name, functools.partial(fn, *args, **kwargs))
        return result

    async def tool(
        self, call: ToolCall, execute: Callable[[], Awaitable[ToolResult]]
    ) -> ToolResult:
        name = f"tool:{call.tool}:{call.call_id}"
        if call.effect is Effect.READ:
            result: ToolResult = await self._recorded(name, execute)
            return result
        # A side effect: first record that the call begins, so a recovering execution can
        # tell "never started" from "started, result unknown". Both step ids are drawn now:
        # concurrent calls then get the same ids in every execution, whichever ends first.
        begin_slot, call_slot = DBOS.reserve_step(), DBOS.reserve_step()
        began_here = False

        async def begin() -> bool:
            nonlocal began_here
            began_here = True
            self._live()
            return True

        await begin_slot.run_async({"name": f"{name}:begin", "retries_allowed": False}, begin)
        if began_here or call.repeatable:
            result = await self._recorded(name, execute, call_slot)
        else:
            result = await self._recorded(name, functools.partial(self._lost, call), call_slot)
        return result

    async def _lost(self, call: ToolCall) -> ToolResult:
        """The call began in an execution that died before recording its result."""
        events = self._events
        assert events is not None
        events.degradation.mark(call.tool, DegradationReason.OUTCOME_UNKNOWN)
        return ToolFailure.interrupted(call)


def _request_of(request: RunRequest | Any, user_id: str | None) -> RunRequest:
    return request if isinstance(request, RunRequest) else RunRequest(request, user_id=user_id)


class DurableEngine:
    """``DurableEngine(resilience.engine(agent, tools=..., event_log=...))``: its runs are
    DBOS workflows named ``name`` (build it before ``DBOS.launch()``, in every replica).

    ``queue``: the DBOS queue a recovered workflow is put on (default DBOS's internal one,
    polled every second; register a faster one with ``DBOS.register_queue``).

    ``leases``: this replica's :class:`RunLeases` (the engine's layer and log): :meth:`start`
    records the run in the ledger before its workflow exists, so a replica dying between the
    two never leaves a workflow no sweep knows of (DBOS itself resumes a dead executor's
    workflows only when a process with the same executor id starts again); the sweep gets
    :meth:`recover` unless it has a ``recover`` already.
    """

    def __init__(
        self,
        engine: ResilientEngine,
        *,
        name: str = "netra_run",
        queue: str | None = None,
        leases: RunLeases | None = None,
    ) -> None:
        if not isinstance(engine, ResilientEngine):
            raise InvalidOptionsError(_OWNER, "engine", "must be a ResilientEngine")
        if not isinstance(name, str) or not name:
            raise InvalidOptionsError(_OWNER, "name", "must be a non-empty string")
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise InvalidOptionsError(_OWNER, "queue", "must be a non-empty string")
        if leases is not None and not isinstance(leases, RunLeases):
            raise InvalidOptionsError(_OWNER, "leases", "must be a RunLeases")
        self.engine = engine
        self.leases = leases
        if leases is not None and leases.recover is None:
            leases.recover = self.recover
        self.name = name
        self.queue = queue
        self.event_log: EventLog | None = engine.event_log
        self._logged: dict[str, asyncio.Event] = {}

        async def netra_run(payload: dict[str, Any]) -> dict[str, Any]:
            return await self._execute(payload)

        self._workflow = DBOS.workflow(name=name)(netra_run)

    async def _log_tail(self, run_id: str) -> tuple[int, bool]:
        """The log's last seq for the run, and whether its final event is in already."""
        log = self.event_log
        if log is None:
            return 0, False
        try:
            last = await log.last_seq(run_id)
        except Exception as exc:  # the shared log is down: replay unwithheld, the log dedupes
            _LOG.warning("event log unavailable at recovery: %s", type(exc).__name__)
            return 0, False
        if not last:
            return 0, False
        try:
            tail = await log.read(run_id, last - 1)
        except Exception:  # the end is unknown: go on after the last seq
            return last, False
        return last, bool(tail) and tail[-1].get("type") == _FINAL_EVENT

    async def _execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        run_id = DBOS.workflow_id
        assert run_id is not None, "runs inside its DBOS workflow"
        last, ended = await self._log_tail(run_id)
        if ended:  # the client has its end already (a sweep's interrupted, or our own)
            return {"run_id": run_id, "status": "ended", "output": None}
        request = RunRequest(
            payload.get("input"),
            user_id=payload.get("user_id"),
            tenant_id=payload.get("tenant_id"),
            run_id=run_id,
            metadata=payload.get("metadata") or {},
        )
        result = await self.engine.run(
            request, steps=_DbosSteps(last), logged=self._logged.pop(run_id, None)
        )
        output = result.output
        try:
            pickle.dumps(output)
        except Exception:
            output = None
        return {"run_id": run_id, "status": result.status.value, "output": output}

    async def start(self, request: RunRequest | Any, *, user_id: str | None = None) -> str:
        """Start a run as the DBOS workflow whose id is the run id; returns the run id once
        its first event is in the event log (bounded by the engine's ``flush_timeout``), so
        ``event_log.follow(run_id)`` finds it on any replica. Starting a run id again does
        not run it twice."""
        request = _request_of(request, user_id)
        await self._start(request)
        return request.run_id

    async def _start(self, request: RunRequest) -> WorkflowHandleAsync[dict[str, Any]]:
        payload = {
            "input": request.input,
            "user_id": request.user_id,
            "tenant_id": request.tenant_id,
            "metadata": dict(request.metadata),
        }
        leases = self.leases
        if leases is not None:  # bounded; a ledger failure is retried by its next tick
            await leases.accept(request.run_id)
        logged = self._logged[request.run_id] = asyncio.Event()
        try:
            try:
                with SetWorkflowID(request.run_id):
                    handle = await DBOS.start_workflow_async(self._workflow, payload)
            except Exception:
                if leases is not None:  # no workflow: the ledger must not hold it running
                    await leases.finish(request.run_id, "failed")
                raise
            waiter = asyncio.ensure_future(logged.wait())
            done = asyncio.ensure_future(handle.get_result())  # shielded by DBOS
            try:
                with contextlib.suppress(TimeoutError):
                    async with self.engine.clock.timeout(
                        to_seconds(self.engine.options.flush_timeout)
                    ):
                        await asyncio.wait({waiter, done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                done.cancel()
        finally:
            self._logged.pop(request.run_id, None)
        return handle

    async def result(self, run_id: str, *, polling: float = 0.2) -> dict[str, Any]:
        """Wait for the run's workflow to end, wherever it runs (``polling``: seconds between
        looks at the database): ``{"run_id", "status", "output"}``."""
        handle: WorkflowHandleAsync[dict[str, Any]] = await DBOS.retrieve_workflow_async(run_id)
        result: dict[str, Any] = await handle.get_result(polling_interval_sec=polling)
        return result

    async def run(self, request: RunRequest | Any, *, user_id: str | None = None) -> dict[str, Any]:
        """Start the run here and wait for its end (``{"run_id", "status", "output"}``)."""
        handle = await self._start(_request_of(request, user_id))
        result: dict[str, Any] = await handle.get_result()
        return result

    async def recover(self, entry: LedgerEntry) -> bool:
        """The ledger's hook (``RunLeases(recover=durable.recover)``): resume the workflow of
        a run whose owner's lease expired. ``False`` (the sweep then ends it ``interrupted``)
        when DBOS has no such workflow of this engine, it already ended, it was started by
        another application version (DBOS runs a workflow only on the version that started
        it), or its executor is not the dead owner (it may be alive elsewhere)."""
        status = await DBOS.get_workflow_status_async(entry.run_id)
        if status is None or status.name != self.name:
            return False
        if status.status == "ENQUEUED":
            return True  # already handed to a queue
        if status.status != "PENDING":
            return False
        if status.app_version != DBOS.application_version:
            _LOG.warning("run %s: started by another application version", entry.run_id)
            return False
        if status.executor_id != entry.owner:
            _LOG.warning("run %s: DBOS executor is not its ledger owner", entry.run_id)
            return False
        await DBOS.resume_workflow_async(entry.run_id, queue_name=self.queue)
        return True
