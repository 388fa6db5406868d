"""Durable runs: what a run costs as a DBOS workflow through DurableEngine, against the same
calls as a bare DBOS workflow (DBOS on a SQLite file; tools and LLM are no-op coroutines, so
this is the orchestration and the database writes only).

    python -m bench.durable_runs --runs 50 --rounds 5

The netra run makes 3 tool calls (unsafe, idempotent, read) and 1 LLM step: 6 DBOS steps (a
side effect records its beginning first) plus the event log and the tool pipelines; the bare
workflow runs the same 4 calls as 4 DBOS steps. Both are timed per run, in alternating
rounds (wall time: compare the ratio, within one run of this script).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from dbos import DBOS, SetWorkflowID

from bench._harness import summary, version
from netra_resilience import Resilience
from netra_resilience.engine import Effect, InMemoryEventLog, RunEvents, RunRequest, Tool
from netra_resilience.integrations.dbos import DurableEngine

Timed = Callable[[int], Awaitable[float]]


async def act(value: str, idempotency_key: str | None = None) -> str:
    return value


async def think(prompt: str) -> str:
    return f"answer to {prompt}"


async def agent(request: RunRequest, events: RunEvents) -> str:
    await request.tools.call("pay", "5")
    await request.tools.call("book", "seat")
    await request.tools.call("look", "menu")
    return await events.step("llm", think, str(request.input))


async def bare_run(prompt: str) -> str:
    await DBOS.run_step_async({"name": "pay"}, act, "5")
    await DBOS.run_step_async({"name": "book"}, act, "seat")
    await DBOS.run_step_async({"name": "look"}, act, "menu")
    return await DBOS.run_step_async({"name": "llm"}, think, prompt)


def durable_engine(resilience: Resilience) -> DurableEngine:
    tools = [
        Tool("pay", act, effect=Effect.UNSAFE),
        Tool("book", act, effect=Effect.IDEMPOTENT),
        Tool("look", act, effect=Effect.READ),
    ]
    log = InMemoryEventLog(max_runs=100_000)
    return DurableEngine(
        resilience.engine(agent, tools=tools, event_log=log), name="bench_durable_run"
    )


def timed_netra(durable: DurableEngine) -> Timed:
    async def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await durable.run(RunRequest("q"))
        return (time.perf_counter() - start) / n

    return run


def timed_bare() -> Timed:
    workflow = DBOS.workflow(name="bench_bare_run")(bare_run)

    async def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with SetWorkflowID(uuid.uuid4().hex):
                handle = await DBOS.start_workflow_async(workflow, "q")
            await handle.get_result()
        return (time.perf_counter() - start) / n

    return run


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{Path(directory) / 'dbos.sqlite'}"
        async with Resilience() as resilience:
            variants: dict[str, Timed] = {
                "netra": timed_netra(durable_engine(resilience)),
                "bare": timed_bare(),
            }  # both workflows registered before the launch
            DBOS(config={"name": "netra-bench", "system_database_url": database})
            try:
                DBOS.launch()
                samples: dict[str, list[float]] = {name: [] for name in variants}
                for timed in variants.values():
                    await timed(max(1, args.runs // 5))  # warm-up
                for round_ in range(args.rounds):
                    order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                    for name in order:
                        samples[name].append(await variants[name](args.runs))
            finally:
                DBOS.destroy(destroy_registry=True)
    netra_ms = statistics.median(samples["netra"]) * 1e3
    bare_ms = statistics.median(samples["bare"]) * 1e3
    print(
        f"Python {sys.version.split()[0]} on {platform.platform()}; dbos {version('dbos')}; "
        f"{args.rounds} rounds x {args.runs} runs, alternating"
    )
    print(f"{'variant':<52} {'ms/run':>8}")
    print(f"{'DurableEngine run (3 tools + 1 LLM step, 6 DBOS steps)':<52} {netra_ms:>8.2f}")
    print(f"{'bare DBOS workflow (same 4 calls, 4 DBOS steps)':<52} {bare_ms:>8.2f}")
    summary(
        "durable run on DBOS/SQLite: DurableEngine vs bare DBOS workflow, same calls (ms per run)",
        f"{netra_ms:.2f} ms",
        f"bare DBOS {bare_ms:.2f} ms",
        netra_ms / bare_ms,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
