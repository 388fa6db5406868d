"""Run every benchmark in bench/ and print one summary table.

    python -m bench.run            # short settings (a few minutes; ASGI 3 x 10 s rounds)
    python -m bench.run --full     # each benchmark's own defaults
    python -m bench.run --raw      # also print each benchmark's full output
    python -m bench.run --instructions   # + the ASGI servers' instructions per request, the
                                         #   Redis limiter's per acquisition, core's per
                                         #   call, under valgrind (5-30 min, with the load)

Each benchmark runs as its own subprocess (``python -m bench.<name>``), so one that is
missing a peer library or a tool (``wrk``) fails alone. Every benchmark prints its summary
rows as ``SUMMARY`` lines (``bench._harness.summary``); this table is those rows, unchanged:

* every row says what it measures and in which unit;
* ``ratio`` is always netra / reference, measured side by side in the same run: above 1 =
  netra slower or costlier, below 1 = cheaper. For peers the reference is the cheapest peer
  doing the same job; for wrappers, the bare call they wrap;
* absolute figures are for the machine and Python printed in the header only; nothing is
  scaled to another machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHORT_ARGS: dict[str, list[str]] = {
    "core": ["--calls", "5000", "--rounds", "5"],
    "admission": ["--seconds", "30", "--requests", "2000", "--calls", "5000", "--rounds", "5"],
    "llm_config": ["--calls", "5000", "--rounds", "5"],
    "engine_overhead": ["--calls", "1000", "--rounds", "5"],
    "durable_runs": ["--runs", "30", "--rounds", "5"],
    "llm_transport": ["--calls", "500", "--rounds", "5", "--samples", "1000"],
    "routing": ["--calls", "20000"],
    "state_backends": ["--ops", "300"],
    "redis_limiter": ["--acquisitions", "20000", "--rounds", "3", "--seconds", "2"],
    "budgets": ["--calls", "5000", "--ops", "500"],
    "asgi_middleware": ["--rounds", "3", "--duration", "10"],
    "adapters": ["--calls", "50", "--rounds", "5"],
}

# Load-independent figures under valgrind: the ASGI middleware's user-space instructions per
# request, the Redis limiter's per acquisition, core's limiter/breaker/rejection per call.
INSTRUCTION_ARGS = {
    "asgi_middleware": ["--instructions", "--instruction-rounds", "1"],
    "redis_limiter": ["--instructions"],
    "core": ["--instructions"],
}


@dataclass(frozen=True)
class Line:
    bench: str
    measure: str
    netra: str
    reference: str
    ratio: str


@dataclass(frozen=True)
class Run:
    name: str
    code: int
    output: str
    seconds: float


def discover() -> list[str]:
    names = [p.stem for p in sorted((ROOT / "bench").glob("*.py"))]
    known = [n for n in SHORT_ARGS if n in names]
    extra = [n for n in names if not n.startswith("_") and n not in SHORT_ARGS and n != "run"]
    return known + extra


def run_bench(name: str, *, full: bool, timeout: float, extra: list[str] | None = None) -> Run:
    args = ([] if full else SHORT_ARGS.get(name, [])) + (extra or [])
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired:
        output, code = f"timed out after {timeout:.0f} s", -1
    return Run(name, code, output, time.perf_counter() - started)


def summary_lines(run: Run) -> list[Line]:
    """The ``SUMMARY`` rows a benchmark printed (tab-separated: what, netra, reference, ratio)."""
    lines = []
    for raw in run.output.splitlines():
        cells = raw.split("\t")
        if cells[0] == "SUMMARY" and len(cells) == 5:
            lines.append(Line(run.name, *cells[1:]))
    return lines


def print_table(lines: list[Line], runs: list[Run]) -> None:
    print(
        f"\nnetra-resilience benchmarks - {date.today()} - {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs "
        f"({platform.system()}), load average {os.getloadavg()[0]:.1f} at the end"
    )
    print("ratio = netra / reference, same run (>1: netra slower or costlier; <1: cheaper)")
    header = ("bench", "what (unit)", "netra", "reference", "ratio")
    rows = [(line.bench, line.measure, line.netra, line.reference, line.ratio) for line in lines]
    # Columns as wide as their longest cell: a long subject never shifts the figures.
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for cells in rows:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    for run in runs:
        status = "ok" if run.code == 0 else f"FAILED (exit {run.code})"
        print(f"  bench.{run.name}: {status} in {run.seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run every benchmark, print one table")
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults")
    parser.add_argument("--raw", action="store_true", help="also print the full outputs")
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per benchmark, seconds")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per request / acquisition (valgrind; slow)",
    )
    args = parser.parse_args(argv)
    names = [n for n in discover() if not args.only or n in args.only]
    # Other work on the machine inflates every figure; the ratios suffer less (same rounds).
    print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)", flush=True)
    runs = []
    for name in names:
        print(f"running bench.{name} ...", flush=True)
        extra = INSTRUCTION_ARGS.get(name) if args.instructions else None
        timeout = args.timeout * (3 if extra else 1)  # several minutes under valgrind
        runs.append(run_bench(name, full=args.full, timeout=timeout, extra=extra))
    lines: list[Line] = []
    for run in runs:
        if args.raw or run.code != 0:
            print(f"\n===== bench.{run.name} (exit {run.code}) =====\n{run.output}")
        lines.extend(summary_lines(run))
    print_table(lines, runs)
    return 0 if all(run.code == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
