"""Engine-stack overhead per run with no faults, against the bare engine in the same run.

    .venv/bin/python -m bench.engine_overhead [--calls 5000] [--rounds 7]

The same engine (one ``agent_thinking`` event, one tool call, an answer) runs:

* bare: called directly, its events going straight to the sink and its tool called as is;
* events only: ``ResilientEngine`` (bound context, numbered events stamped with the
  degradation, a per-run sender task, the final ``agent_completed``);
* full stack: ``wrap_engine`` with the tool behind its pipeline (retry, limiter, breaker,
  timeout) and two hooks behind breakers, one inline and one through the background queue.

Every variant lets the event loop run once after each run (``asyncio.sleep(0)``, as a server
does between requests), so work a run leaves in the background (the hook queue's jobs, a
sender task) is done inside the timed loop and counted; the bare engine pays the same pass.

Prints microseconds per run and the paired extra over the bare engine (median over rounds
of the difference within a round). Not run by the tests.

``--instructions`` also counts user-space instructions per run under ``valgrind
--tool=callgrind`` (load-independent): each variant runs in its own process twice, with
``--instruction-runs`` N and 3N runs after the same warm-up; (I(3N) - I(N)) / 2N cancels the
start-up and import cost, leaving what one run executes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench._harness import Row, RunFn, Variant, measure, summary
from netra_resilience.engine import (
    Hook,
    ResilientEngine,
    RunEvents,
    RunRequest,
    Tool,
    wrap_engine,
)


async def sink(event: dict[str, Any]) -> None:
    return None


async def lookup(query: str) -> str:
    return "result"


async def hook(event: Mapping[str, Any]) -> None:
    return None


async def engine(request: RunRequest, events: RunEvents) -> str:
    await events.thinking("step")
    result = await request.tools.call("lookup", request.input)
    return "answer" if result.ok else "no answer"


class _BareEvents:
    """What the engine would do without the stack: send straight to the sink."""

    async def thinking(self, text: str) -> None:
        await sink({"type": "agent_thinking", "data": {"text": text}})


class _BareResult:
    ok = True


class _BareTools:
    async def call(self, name: str, *args: Any) -> _BareResult:
        await lookup(*args)
        return _BareResult()


class _BareRequest:
    input = "q"
    tools = _BareTools()


async def build_bare() -> RunFn:
    request: Any = _BareRequest()
    events: Any = _BareEvents()

    async def run(n: int) -> None:
        for _ in range(n):
            await engine(request, events)
            await asyncio.sleep(0)

    return run


def _stack_run(stack: ResilientEngine) -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            await stack.run(RunRequest("q", user_id="u", run_id="r"), sink)
            await asyncio.sleep(0)

    return run


async def build_events_only() -> RunFn:
    async def bare_tools_engine(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("step")
        await lookup(request.input)
        return "answer"

    return _stack_run(ResilientEngine(bare_tools_engine))


async def build_full() -> RunFn:
    return _stack_run(
        wrap_engine(
            engine,
            tools=[Tool("lookup", lookup, rate=1e6, burst=1_000_000)],
            hooks=[
                Hook("analytics", hook),
                Hook("audit", hook, background=False, events={"agent_completed"}),
            ],
        )
    )


VARIANTS = [
    Variant("bare engine", "run", build_bare),
    Variant("ResilientEngine (events only)", "run", build_events_only),
    Variant("wrap_engine (tool pipeline + 2 hooks)", "run", build_full),
]


def print_table(rows: list[Row]) -> None:
    header = f"{'variant':<40} {'us/run':>8} {'extra us':>9}"
    print(header)
    print("-" * len(header))
    for row in sorted(rows, key=lambda r: r.median_ns):
        print(f"{row.name:<40} {row.median_ns / 1000:>8.1f} {row.overhead_ns / 1000:>9.1f}")


async def _timeout_cost_us(n: int = 20_000) -> float:
    """Calibration: one ``async with asyncio.timeout()`` here (DESIGN.md says 2.4 us there)."""
    start = time.perf_counter()
    for _ in range(n):
        async with asyncio.timeout(5.0):
            await sink({})
    return (time.perf_counter() - start) / n * 1e6


async def main_async(args: argparse.Namespace) -> None:
    rows = await measure(
        VARIANTS, {"run": "bare engine"}, calls=args.calls, rounds=args.rounds, warmup=500
    )
    print(
        f"Python {sys.version.split()[0]} on {platform.platform()}; "
        f"{args.rounds} rounds x {args.calls} runs; {dt.date.today()}"
    )
    print(f"calibration: asyncio.timeout block = {await _timeout_cost_us():.1f} us on this machine")
    print_table(rows)
    bare = next(r for r in rows if r.name == "bare engine")
    for r in rows:
        if r is not bare:
            summary(
                f"agent run: {r.name} (us per run)",
                f"{r.median_ns / 1000:.1f} us",
                f"bare engine {bare.median_ns / 1000:.1f} us",
                r.median_ns / bare.median_ns,
            )


async def _run_counted(name: str, runs: int) -> None:
    variant = next(v for v in VARIANTS if v.name == name)
    run = await variant.build()
    await run(500)  # warm-up: the same in both processes, so it cancels out
    await run(runs)


def _instructions(name: str, runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.engine_overhead",
                "--count",
                name,
                "--instruction-runs",
                str(runs),
            ],
            check=True,
            capture_output=True,
        )
        totals = re.search(r"^totals:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert totals is not None, "no totals in the callgrind output"
        return int(totals[1])


def instructions(runs: int) -> None:
    """User-space instructions per run of each variant (callgrind; see the module doc)."""
    if shutil.which("valgrind") is None:
        print("instructions per run: not counted (no valgrind; apt-get install valgrind)")
        return
    per_run = {
        v.name: (_instructions(v.name, 3 * runs) - _instructions(v.name, runs)) / (2 * runs)
        for v in VARIANTS
    }
    bare = per_run["bare engine"]
    print(f"callgrind: user-space instructions per run ({runs} vs {3 * runs} runs per variant)")
    for name, count in per_run.items():
        print(f"  {name:<40} {count:>10,.0f}  extra {count - bare:>+10,.0f}")
    for name, count in per_run.items():
        if name != "bare engine":
            summary(
                f"agent run: {name} (instructions per run, callgrind)",
                f"{count / 1000:,.1f}k",
                f"bare engine {bare / 1000:,.1f}k",
                count / bare,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    parser.add_argument("--instructions-only", action="store_true", help="no timing")
    parser.add_argument("--instruction-runs", type=int, default=1_000)
    parser.add_argument("--count", help=argparse.SUPPRESS)  # one variant, under callgrind
    args = parser.parse_args(argv)
    if args.count:
        asyncio.run(_run_counted(args.count, args.instruction_runs))
        return
    if not args.instructions_only:
        asyncio.run(main_async(args))
    if args.instructions or args.instructions_only:
        instructions(args.instruction_runs)


if __name__ == "__main__":
    main()
