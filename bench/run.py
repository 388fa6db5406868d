"""Run every benchmark in bench/ and print one summary table of ratios.

    python -m bench.run            # short settings (about a minute)
    python -m bench.run --full     # each benchmark's own defaults
    python -m bench.run --raw      # also print each benchmark's full output

Each benchmark runs as its own subprocess (``python -m bench.<name>``), so one that is
missing a peer library or a tool (``wrk``) fails alone. Ratios read:

* peers (``core``): the peer's extra cost per call divided by netra's for the same job
  (above 1: netra adds less than the peer);
* ``llm_transport`` / ``asgi_middleware``: netra's path over the bare path it wraps (1.00 =
  free; for the ASGI middleware, requests per second kept);
* ``engine_overhead`` / ``routing``: the extra microseconds per run / call over a bare await;
* ``state_backends``: Redis-down (database fallback) latency over Redis-up (origin: <= 5x).
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHORT_ARGS: dict[str, list[str]] = {
    "core": ["--calls", "2000", "--rounds", "3"],
    "engine_overhead": ["--calls", "1000", "--rounds", "3"],
    "llm_transport": ["--calls", "500", "--rounds", "3", "--samples", "500"],
    "routing": [],
    "state_backends": ["--ops", "300"],
    "asgi_middleware": ["--rounds", "1", "--duration", "1", "--warmup", "1", "--connections", "8"],
}

CATEGORIES = {
    "retry": ("retry", "on_exception"),
    "breaker": ("breaker",),
    "timeout": ("timeout",),
    "rate limit": ("limit",),
}
_ROW = re.compile(
    r"^(?P<name>\S.{44}\S?)\s+(?P<lib>\S+(?: \S+)?)\s+(?P<ns>\d+)\s+(?P<extra>-?\d+)$"
)


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


def run_bench(name: str, *, full: bool, timeout: float) -> Run:
    args = [] if full else SHORT_ARGS.get(name, [])
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


def _category(variant: str) -> str | None:
    lowered = variant.lower()
    for category, words in CATEGORIES.items():
        if any(word in lowered for word in words):
            return category
    return None


def core_lines(output: str) -> list[Line]:
    """Peer vs netra, extra ns per call, per section and category (retry, breaker, ...)."""
    lines: list[Line] = []
    section = ""
    rows: list[tuple[str, str, float]] = []

    def flush() -> None:
        netra = {}
        for variant, lib, extra in rows:
            category = "reject" if "reject" in variant.lower() else _category(variant)
            if lib == "netra" and category is not None and category not in netra:
                netra[category] = (variant, extra)
        for variant, lib, extra in rows:
            if lib in ("netra", "baseline"):
                continue
            category = "reject" if "reject" in variant.lower() else _category(variant)
            if category not in netra:
                continue
            mine, mine_extra = netra[category]
            ratio = f"{extra / mine_extra:.2f}x" if mine_extra > 0 else "-"
            lines.append(
                Line(
                    "core",
                    f"{section.split('(')[0].strip().lower()}: {category}",
                    f"{mine} {mine_extra / 1000:.2f} us",
                    f"{variant.strip()} {extra / 1000:.2f} us",
                    ratio,
                )
            )
        rows.clear()

    for raw in output.splitlines():
        match = _ROW.match(raw.rstrip())
        if match:
            rows.append((match["name"].strip(), match["lib"].split()[0], float(match["extra"])))
        elif raw.strip() and not raw.startswith(("variant", "---")):
            flush()
            section = raw.strip()
    flush()
    return lines


def _two_columns(bench: str, output: str, pattern: str, bare: str) -> list[Line]:
    found = re.findall(pattern, output, flags=re.MULTILINE)
    values = {name.strip(): float(value.replace(",", "")) for name, value in found}
    base = values.get(bare)
    if not base:
        return []
    # Against a bare call of a few hundred ns a ratio says little: show the extra cost.
    return [
        Line(bench, name, f"{value:g} us", f"{bare} {base:g} us", f"+{value - base:.1f} us")
        for name, value in values.items()
        if name != bare
    ]


def other_lines(run: Run) -> list[Line]:
    out = run.output
    if run.name == "engine_overhead":
        return _two_columns(run.name, out, r"^(\S.*?)\s{2,}([\d.]+)\s+[\d.]+$", "bare engine")
    if run.name == "routing":
        return _two_columns(run.name, out, r"^(\S.*?)\s{2,}([\d.]+)\s+[\d.]+$", "bare await")
    if run.name == "llm_transport":
        found = re.findall(r"^(\S.*?)\s{2,}(\d\.\d\d)\s+[\d.]+$", out, flags=re.MULTILINE)
        return [
            Line(run.name, name.strip(), "resilient", "bare transport", f"{ratio}x")
            for name, ratio in found
            if float(ratio) != 1.0
        ]
    if run.name == "state_backends":
        found = re.findall(r"^(session \w+)\s+(.+?)\s{2,}(.+?)\s+([\d.]+)x$", out, flags=re.M)
        return [
            Line(run.name, f"{m} (Redis down / up)", down.strip(), up.strip(), f"{r}x")
            for m, up, down, r in found
        ]
    if run.name == "asgi_middleware":
        match = re.search(r"ratio \(median of rounds\): ([\d.]+)", out)
        if match:
            return [Line(run.name, "req/s with install() / plain", "", "", f"{match[1]}x")]
    return []


def print_table(lines: list[Line], runs: list[Run]) -> None:
    print(
        f"\nnetra-resilience benchmarks - {date.today()} - {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.machine()} ({platform.system()})"
    )
    widths = (16, 46, 40, 40, 8)
    header = ("bench", "measure", "netra", "reference / peer", "ratio")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-" * (sum(widths) + 8))
    for line in lines:
        cells = (line.bench, line.measure, line.netra, line.reference, line.ratio)
        print("  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True)))
    for run in runs:
        status = "ok" if run.code == 0 else f"FAILED (exit {run.code})"
        print(f"  bench.{run.name}: {status} in {run.seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run every benchmark, print one table")
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults")
    parser.add_argument("--raw", action="store_true", help="also print the full outputs")
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per benchmark, seconds")
    args = parser.parse_args(argv)
    names = [n for n in discover() if not args.only or n in args.only]
    runs = []
    for name in names:
        print(f"running bench.{name} ...", flush=True)
        runs.append(run_bench(name, full=args.full, timeout=args.timeout))
    lines: list[Line] = []
    for run in runs:
        if args.raw or run.code != 0:
            print(f"\n===== bench.{run.name} (exit {run.code}) =====\n{run.output}")
        if run.code == 0:
            lines.extend(core_lines(run.output) if run.name == "core" else other_lines(run))
    print_table(lines, runs)
    return 0 if all(run.code == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
