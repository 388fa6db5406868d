"""The durable app served over HTTP, one replica per process, for the tests behind HAProxy:
``python -m tests.integration.durable.web --port N --executor replica-a ...``.

It serves the example backend's run routes with the same public helpers
(``examples/agent_backend/runs.py``: ``serve_frames``, ``send_run_events``,
``run_event_stream``), so the same clients drive both:

* ``POST /v1/runs`` ``{"user_id", "message"}`` -> 202 ``{"run_id", "events"}``;
* ``GET /v1/runs/{run_id}/events``: SSE, ``id:`` = seq, ``Last-Event-ID`` honoured;
* ``WS /v1/runs/ws``: ``{"user_id", "message"}`` starts a run and streams it,
  ``{"resume": run_id, "last_seq": N}`` resumes one;
* ``/health/live`` (``install``): what HAProxy checks.

Unlike the example backend, each run is a DBOS workflow (``DurableEngine``, DBOS's system
database on the shared PostgreSQL): when this replica dies, the survivor's ledger sweep hands
its runs to DBOS, which continues them there from their last completed step. It lives here,
not in ``examples/``: the example backend is at its module limit, and this agent is the
test's instrumented one (every step an HTTP call to the counting tool server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from dbos import DBOS
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import from_json
from sqlalchemy.ext.asyncio import create_async_engine

from netra_resilience import Resilience
from netra_resilience.engine import RunEvents, RunLeases, RunRequest, ToolFailure
from netra_resilience.integrations.fastapi import (
    install,
    run_event_stream,
    send_run_events,
    serve_frames,
)
from netra_resilience.integrations.redis import RedisEventLog, redis_breaker, redis_client
from netra_resilience.integrations.sqlalchemy import SqlRunLedger
from netra_resilience.pipeline import Pipeline
from tests.integration.durable.app import QUEUE, asker, build, dbos_config


class StartRun(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=8000)


class ResumeRun(BaseModel):
    resume: str = Field(min_length=1, max_length=64)
    last_seq: int = Field(default=0, ge=0)


def replica_agent(replica: str) -> Any:
    """The durable test agent's steps (charge, lookup, LLM, reserve + notify at once), each
    call carrying its run id, and the replica that started the run as a recorded step: a
    recovered run's answer says where it started and where it finished."""

    def factory(server: str, llm: Pipeline) -> Any:
        ask = asker(server, llm)

        async def here() -> str:
            return replica

        async def agent(request: RunRequest, events: RunEvents) -> dict[str, Any]:
            run = request.run_id
            started_on = await events.step("replica", here)
            await events.thinking("charging", replica=started_on)
            charged = await request.tools.call("charge", 5, run=run)
            looked = await request.tools.call("lookup", "seat", run=run)
            answer = await events.step("llm", ask, str(request.input))
            await events.thinking("booking", answer=answer)
            reserved, notified = await asyncio.gather(
                request.tools.call("reserve", "seat", run=run),
                request.tools.call("notify", answer, run=run),
            )
            return {
                "answer": answer,
                "started_on": started_on,
                "finished_on": replica,
                "charged": charged.ok,
                "looked": looked.ok,
                "reserved": reserved.ok,
                "notified": notified.ok,
                "notify_unknown": isinstance(notified, ToolFailure) and notified.outcome_unknown,
            }

        return agent

    return factory


def create_app(args: argparse.Namespace) -> FastAPI:
    resilience = Resilience()
    client = resilience.closing(redis_client(args.redis, max_connections=1024))
    breaker = resilience.closing(redis_breaker(client, name="events", timeout=0.5))
    log = RedisEventLog(client, breaker=breaker, prefix=args.prefix)
    # two replicas share one test PostgreSQL (max_connections=60): small pools
    database = create_async_engine(args.ledger, pool_size=3, max_overflow=3)
    ledger = SqlRunLedger(database)
    leases = RunLeases(ledger, log, owner=args.executor, lease=args.lease)
    durable = build(resilience, args.tools, log, leases=leases, agent=replica_agent(args.executor))
    config: Any = {**dbos_config(args.database, args.executor), "sys_db_pool_size": 16}
    DBOS(config=config)
    events_log = leases.log

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ledger.create_schema()
        DBOS.launch()  # inside the running loop: recovered workflows run on it
        await DBOS.register_queue_async(QUEUE, polling_interval_sec=0.05)
        sweeping = asyncio.get_running_loop().create_task(leases.run())
        try:
            yield
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)
            await ledger.database.aclose()
            await database.dispose()
            DBOS.destroy()

    app = FastAPI(lifespan=lifespan)

    async def start(body: StartRun) -> str:
        return await durable.start(RunRequest(body.message, user_id=body.user_id))

    @app.post("/v1/runs", status_code=202)
    async def create_run(body: StartRun) -> dict[str, str]:
        run_id = await start(body)
        return {"run_id": run_id, "events": f"/v1/runs/{run_id}/events"}

    @app.get("/v1/runs/{run_id}/events")
    async def run_events(run_id: str, request: Request) -> Response:
        return run_event_stream(request, events_log, run_id)

    @app.websocket("/v1/runs/ws")
    async def runs_ws(websocket: WebSocket) -> None:
        await websocket.accept()

        async def turn(text: str) -> None:
            try:
                raw = from_json(text)
                if isinstance(raw, dict) and "resume" in raw:
                    resume = ResumeRun.model_validate(raw)
                    await send_run_events(websocket, events_log, resume.resume, resume.last_seq)
                    return
                body = StartRun.model_validate(raw)
            except ValueError as exc:  # pydantic's ValidationError is one too
                reason = "invalid_request" if isinstance(exc, ValidationError) else "invalid_json"
                await websocket.send_json({"type": "error", "reason": reason})
                return
            await send_run_events(websocket, events_log, await start(body), 0)

        # a hang-up stops only the sending: the run goes on, the client resumes
        await serve_frames(websocket, turn)

    install(app, resilience)
    return app


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for name in ("database", "ledger", "redis", "tools", "executor", "prefix"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        create_app(args), host="127.0.0.1", port=args.port, log_level="warning", lifespan="on"
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(sys.argv[1:])
