"""Runs that outlive their connection (and, with Redis, their replica).

* ``POST /v1/runs`` ``{"user_id", "message"}`` -> 202 ``{"run_id", "events"}``: the run starts
  in the background, its events go to the event log;
* ``GET /v1/runs/{run_id}/events``: SSE, ``id:`` = seq; a browser's ``EventSource`` resumes by
  itself (``Last-Event-ID``), a first connection may pass ``?last_event_id=N``;
* ``WS /v1/runs/ws``: send ``{"user_id", "message"}`` to start a run and get its events, or
  ``{"resume": run_id, "last_seq": N}`` to get what was missed after N, then the live ones.

With ``NETRA_REDIS_URL`` the log is a Redis Stream per run, so any replica behind the load
balancer can resume any run; otherwise it is this process's memory. Every run is in the run
ledger (the sessions database) with a lease this replica renews; when a replica dies, another
one's sweep ends its runs with ``agent_completed`` ``status: interrupted`` in the log, so a
resuming client is told instead of waiting forever. Run ids are random (128 bits): knowing
one is what allows following it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import from_json

from examples.agent_backend.config import Settings
from examples.agent_backend.wiring import AuthService
from netra_resilience import ExecutionRejectedError, Resilience, RunRequest
from netra_resilience.engine import (
    EndableEventLog,
    EventLog,
    InMemoryEventLog,
    ResilientEngine,
    RunLeases,
)
from netra_resilience.integrations.fastapi import (
    run_event_stream,
    send_run_events,
    serve_frames,
)
from netra_resilience.integrations.redis import RedisEventLog, redis_breaker, redis_client
from netra_resilience.integrations.sqlalchemy import SqlRunLedger, SqlSessionBackend


class StartRun(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=8000)


class ResumeRun(BaseModel):
    resume: str = Field(min_length=1, max_length=64)
    last_seq: int = Field(default=0, ge=0)


def run_event_log(settings: Settings, resilience: Resilience) -> EndableEventLog:
    """The shared Redis event log when Redis is configured, else an in-process one."""
    if settings.redis_url is None or settings.redis_url == "memory://":
        return InMemoryEventLog(clock=resilience.clock)
    # every follower of a run executing on another replica holds a connection in XREAD BLOCK
    client = resilience.closing(redis_client(settings.redis_url, max_connections=2048))
    # 0.5 s per call, not the default 0.1 s: a burst of runs on a busy replica must not trip
    # it (every event it then keeps locally only is lost to a resume elsewhere)
    breaker = resilience.closing(
        redis_breaker(client, name="events", timeout=0.5, clock=resilience.clock)
    )
    return RedisEventLog(client, breaker=breaker)


class ResumableRuns:
    """The event log, the run ledger (in the sessions database) and this replica's leases."""

    def __init__(
        self, settings: Settings, resilience: Resilience, database: SqlSessionBackend
    ) -> None:
        self.event_log = run_event_log(settings, resilience)
        self.ledger = SqlRunLedger(database.database)
        self.leases = RunLeases(
            self.ledger, self.event_log, lease=settings.run_lease, clock=resilience.clock
        )
        self._sweeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the ledger's table; renew and sweep in the background until closed."""
        await self.ledger.create_schema()
        self._sweeping = asyncio.get_running_loop().create_task(self.leases.run())

    async def aclose(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            await asyncio.gather(self._sweeping, return_exceptions=True)


def runs_router(engine: ResilientEngine, auth: AuthService, log: EventLog) -> APIRouter:
    """The routes; ``log`` is what they read runs from (``ResumableRuns.leases.log``: a run
    the shared log has not got yet but the ledger has running is "try again", not unknown)."""
    router = APIRouter()

    async def start(body: StartRun) -> str:
        await auth.verify(body.user_id)  # a rejection becomes a 503 (auth is critical)
        request = RunRequest(body.message, user_id=body.user_id, metadata={"stream": True})
        await engine.start(request)
        return request.run_id

    @router.post("/v1/runs", status_code=202)
    async def create_run(body: StartRun) -> dict[str, str]:
        run_id = await start(body)
        return {"run_id": run_id, "events": f"/v1/runs/{run_id}/events"}

    @router.get("/v1/runs/{run_id}/events")
    async def run_events(run_id: str, request: Request) -> Response:
        return run_event_stream(request, log, run_id)

    @router.websocket("/v1/runs/ws")
    async def runs_ws(websocket: WebSocket) -> None:
        await websocket.accept()

        async def turn(text: str) -> None:
            await _turn(websocket, text)

        # Bad frames answered, the socket kept open; a hang-up stops only the sending: the
        # run goes on, and the client resumes with its run id and last seq.
        await serve_frames(websocket, turn)

    async def _turn(websocket: WebSocket, text: str) -> None:
        try:
            raw = from_json(text)  # bounded depth: a deeply nested frame is a ValueError
            if isinstance(raw, dict) and "resume" in raw:
                resume = ResumeRun.model_validate(raw)
                await send_run_events(websocket, log, resume.resume, resume.last_seq)
                return
            body = StartRun.model_validate(raw)
        except ValueError as exc:  # pydantic's ValidationError is one too
            reason = "invalid_request" if isinstance(exc, ValidationError) else "invalid_json"
            await websocket.send_json(
                {
                    "type": "error",
                    "reason": reason,
                    "error": "expected {user_id, message} or {resume, last_seq}",
                }
            )
            return
        try:
            run_id = await start(body)
        except ExecutionRejectedError as exc:
            await websocket.send_json(
                {"type": "error", "error": "unavailable", "dependency": exc.dependency}
            )
            return
        await send_run_events(websocket, log, run_id, 0)

    return router
