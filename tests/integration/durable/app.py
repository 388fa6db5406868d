"""A small durable agent app on DBOS, run in-process by the unit-level tests and as a
subprocess (``python -m tests.integration.durable.app``) by the SIGKILL test.

The agent charges (``unsafe``, completes), asks the LLM (a step through an LLM pipeline),
then reserves (``idempotent``) and notifies (``unsafe``) at once. Every tool and the LLM are
HTTP calls to the test's local tool server, which counts what it applied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from dbos import DBOS

from netra_resilience import Resilience
from netra_resilience.engine import (
    Effect,
    EventLog,
    ResilientEngine,
    RunEvents,
    RunLeases,
    RunRequest,
    Tool,
    ToolFailure,
)
from netra_resilience.integrations.dbos import DurableEngine
from netra_resilience.pipeline import Pipeline

APP_VERSION = "netra-durable-test-1"
QUEUE = "netra_recovery"


def agent_tools(server: str) -> list[Tool]:
    """``run=``: the run id, sent along so the tool server counts each run's calls."""

    async def post(path: str, body: dict[str, Any], key: str | None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        async with httpx.AsyncClient(base_url=server, timeout=30.0) as client:
            response = await client.post(path, json=body, headers=headers)
            response.raise_for_status()
            return response.json()

    async def charge(amount: int, run: str = "", idempotency_key: str | None = None) -> Any:
        return await post("/charge", {"amount": amount, "run": run}, idempotency_key)

    async def reserve(item: str, run: str = "", idempotency_key: str | None = None) -> Any:
        return await post("/reserve", {"item": item, "run": run}, idempotency_key)

    async def notify(text: str, run: str = "", idempotency_key: str | None = None) -> Any:
        return await post("/notify", {"text": text, "run": run}, idempotency_key)

    async def lookup(item: str, run: str = "") -> Any:
        return await post("/lookup", {"item": item, "run": run}, None)

    # timeouts longer than the test: an in-flight call is cut by the SIGKILL, not by them
    return [
        Tool("charge", charge, effect=Effect.UNSAFE, timeout=30, max_attempts=1),
        Tool("reserve", reserve, effect=Effect.IDEMPOTENT, timeout=30, max_attempts=1),
        Tool("notify", notify, effect=Effect.UNSAFE, timeout=30, max_attempts=1),
        Tool("lookup", lookup, effect=Effect.READ, timeout=30, max_attempts=1),
    ]


def asker(server: str, llm: Pipeline) -> Callable[[str], Awaitable[str]]:
    """The LLM call: the tool server's ``/llm`` through the ``llm`` pipeline."""

    async def ask(prompt: str) -> str:
        async def call() -> str:
            async with httpx.AsyncClient(base_url=server, timeout=30.0) as client:
                response = await client.post("/llm", json={"prompt": prompt})
                response.raise_for_status()
                return str(response.json()["text"])

        return await llm.execute(call)

    return ask


AgentFactory = Callable[[str, Pipeline], Any]
"""``factory(tool_server_url, llm_pipeline) -> agent``."""


def _agent(server: str, llm: Pipeline) -> Any:
    ask = asker(server, llm)

    async def agent(request: RunRequest, events: RunEvents) -> dict[str, Any]:
        await events.thinking("charging")
        charged = await request.tools.call("charge", 5)
        looked = await request.tools.call("lookup", "seat")
        answer = await events.step("llm", ask, str(request.input))
        await events.thinking("booking", answer=answer)
        reserved, notified = await asyncio.gather(
            request.tools.call("reserve", "seat"), request.tools.call("notify", answer)
        )
        return {
            "answer": answer,
            "charged": charged.ok,
            "looked": looked.ok,
            "reserved": reserved.ok,
            "notified": notified.ok,
            "notify_unknown": isinstance(notified, ToolFailure) and notified.outcome_unknown,
        }

    return agent


def build(
    resilience: Resilience,
    server: str,
    log: EventLog,
    *,
    leases: RunLeases | None = None,
    agent: AgentFactory = _agent,
) -> DurableEngine:
    """The engine (tools, LLM pipeline, event log) wrapped for DBOS; before DBOS.launch()."""
    llm = resilience.pipeline("llm").add_timeout(30.0).add_circuit_breaker().build()
    engine: ResilientEngine = resilience.engine(
        agent(server, llm),
        tools=agent_tools(server),
        event_log=leases.log if leases is not None else log,
        layers=[leases.layer] if leases is not None else [],
    )
    return DurableEngine(engine, name="durable_test_run", queue=QUEUE, leases=leases)


def dbos_config(database_url: str, executor: str) -> Any:
    return {
        "name": "netra-durable-test",
        "system_database_url": database_url,
        "executor_id": executor,
        "application_version": APP_VERSION,
    }


async def serve(args: argparse.Namespace) -> None:
    """One replica: DBOS on PostgreSQL, the Redis event log, the run ledger with its leases
    (renewed and swept in the background); ``--run-id`` starts that run here."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from netra_resilience.integrations.redis import RedisEventLog, redis_breaker, redis_client
    from netra_resilience.integrations.sqlalchemy import SqlRunLedger

    resilience = Resilience()
    client = redis_client(args.redis)
    log = RedisEventLog(client, breaker=redis_breaker(client, timeout=1.0), prefix=args.prefix)
    database = create_async_engine(args.ledger)
    ledger = SqlRunLedger(database)
    await ledger.create_schema()
    leases = RunLeases(ledger, log, owner=args.executor, lease=args.lease)
    durable = build(resilience, args.tools, log, leases=leases)
    DBOS(config=dbos_config(args.database, args.executor))
    DBOS.launch()  # inside the running loop: recovered workflows run on it
    await DBOS.register_queue_async(QUEUE, polling_interval_sec=0.05)
    sweeping = asyncio.get_running_loop().create_task(leases.run())
    try:
        runs = [run for run in args.run_ids.split(",") if run]
        if not args.until_done:
            await asyncio.gather(
                *(durable.start(RunRequest(args.message, user_id="u1", run_id=r)) for r in runs)
            )
        print(json.dumps({"ready": args.executor}), flush=True)
        if args.until_done:
            await asyncio.gather(*(durable.result(run) for run in runs))
            workflows = [await DBOS.get_workflow_status_async(run) for run in runs]
            done = {
                "workflows": sorted({(w.status, w.executor_id) for w in workflows if w}),
                "resumed": leases.resumed,
                "interrupted": leases.interrupted,
            }
            print(json.dumps(done), flush=True)
        else:
            await asyncio.Event().wait()  # until SIGKILLed
    finally:
        sweeping.cancel()
        await asyncio.gather(sweeping, return_exceptions=True)
        await resilience.aclose()
        await ledger.database.aclose()
        await database.dispose()
        await client.aclose()
        DBOS.destroy()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for name in ("database", "ledger", "redis", "tools", "executor", "prefix"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--run-ids", default="", help="comma-separated")
    parser.add_argument("--message", default="hello")
    parser.add_argument("--until-done", action="store_true", help="recover --run-ids, exit")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
