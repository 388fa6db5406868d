"""``netra-resilience drill``: prove an agent backend survives its dependencies failing.

Runs the origin failure scenarios (Redis down, database exhaustion, LLM timeouts, rate limits,
discovery/DNS failures, health-check failures, auth failures, connection churn) plus LLM
stalls and malformed responses, with concurrent simulated users, against the example backend
in-process or any backend in demo mode (``--target URL``). Nothing here is imported by
``netra_resilience`` itself.

The console script is installed with the core, which has no third-party dependencies, so the
command checks for its own before it starts: ``--target`` needs the ``drill`` extra (httpx,
websockets, rich); the in-process example backend needs ``demo`` and a source checkout.

Modules: ``_scenarios`` (what is run and how it is judged), ``_runner`` (users, phases, the
in-process target), ``_report`` (scorecard and HTML timeline); this one is the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from netra_resilience import __version__
from netra_resilience.drill._report import print_scorecard, write_html
from netra_resilience.drill._runner import (
    TARGET_CONTRACT,
    DrillOptions,
    TargetError,
    check_target,
    in_process_backend,
    install_hint,
    run_scenarios,
)
from netra_resilience.drill._scenarios import ScenarioResult, scenario_names, select

__all__ = ["DRILL_PACKAGES", "entry_point", "main"]

DRILL_PACKAGES = ("httpx", "websockets", "rich")
"""The ``drill`` extra: what a drill of ``--target URL`` imports (same import names)."""
IN_PROCESS_PACKAGES = ("uvicorn",)
"""What the in-process target adds (the ``demo`` extra also brings the example's libraries)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netra-resilience", description="netra-resilience command line tools"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    drill = commands.add_parser(
        "drill",
        help="run the failure scenarios against an agent backend and score it",
        description="Run the nine origin failure scenarios (plus LLM stalls, malformed "
        "responses and a tool answer lost after its upstream committed) with concurrent "
        "simulated users; print a scorecard, write an HTML report, exit 1 when a scenario "
        "breaks its thresholds. Needs the 'drill' extra "
        "(pip install \"netra-resilience[drill]\"); without --target also the 'demo' extra "
        "and a source checkout (the example backend).",
        epilog=TARGET_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drill.add_argument(
        "--target",
        metavar="URL",
        help="a running backend with demo mode on (default: the example backend, in-process)",
    )
    drill.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    drill.add_argument(
        "--fault-seconds", type=float, default=4.0, help="how long each fault lasts (default 4)"
    )
    drill.add_argument(
        "--scenario",
        action="append",
        choices=scenario_names(),
        metavar="NAME",
        help=f"run only these (repeatable): {', '.join(scenario_names())}",
    )
    drill.add_argument(
        "--report",
        type=Path,
        default=Path("drill-report.html"),
        help="HTML report path (default drill-report.html); '-' for none",
    )
    drill.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def missing_package(target: str | None) -> str | None:
    """Why the drill cannot start here (a package to install), or ``None``."""
    for package in DRILL_PACKAGES:
        if importlib.util.find_spec(package) is None:
            return f"netra-resilience drill {install_hint(package, 'drill')}"
    if target is None:
        for package in IN_PROCESS_PACKAGES:
            if importlib.util.find_spec(package) is None:
                return (
                    f"the in-process drill {install_hint(package, 'demo')}"
                    " (or drill a running backend with --target URL)"
                )
    return None


async def drill(
    args: argparse.Namespace, options: DrillOptions
) -> tuple[list[ScenarioResult], str]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    scenarios = select(args.scenario)
    clustered = [s.name for s in scenarios if s.runs]
    if clustered and not args.target:
        raise TargetError(
            f"{', '.join(clustered)} needs a cluster: --target a load balancer in front of two "
            "or more replicas in demo mode sharing Redis and the run ledger (the in-process "
            "backend is one process, and the drill's own)"
        )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        disable=args.quiet,
        transient=True,
    )
    with progress:
        task = progress.add_task("starting", total=len(scenarios))
        done: set[str] = set()

        def report(name: str, phase: str) -> None:
            if phase == "warm-up" and done:
                progress.advance(task)
            done.add(name)
            progress.update(task, description=f"{name}: {phase}")

        websocket = round(options.users * options.ws_share) > 0 or any(s.ws_only for s in scenarios)
        if args.target:
            target = args.target.rstrip("/")
            progress.update(task, description=f"checking {target}")
            await check_target(target, scenarios, websocket=websocket)
            results, _ = await run_scenarios(scenarios, target, options, progress=report)
        else:
            async with in_process_backend() as url:
                target = f"in-process example backend ({url})"
                await check_target(url, scenarios, websocket=websocket)  # the contract holds
                results, _ = await run_scenarios(scenarios, url, options, progress=report)
    return results, target


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``netra-resilience drill ...``); returns the exit code."""
    args = _parser().parse_args(argv)
    problem = missing_package(args.target)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from rich.console import Console

    # Wide enough for the scorecard when the output is a file or a CI log.
    console = Console() if sys.stdout.isatty() else Console(width=176)
    options = DrillOptions(users=max(1, args.users), fault_seconds=args.fault_seconds)
    started = datetime.now(UTC)
    try:
        results, target = asyncio.run(drill(args, options))
    except TargetError as exc:
        print(f"cannot drill the target: {exc}", file=sys.stderr)
        return 2
    print_scorecard(results, console)
    if str(args.report) != "-":
        path = write_html(
            results,
            args.report,
            target=target,
            options=options,
            version=__version__,
            started=started,
        )
        console.print(f"report: {path.resolve()}")
    passed = all(result.passed for result in results)
    console.print("[green]all scenarios passed[/]" if passed else "[red]drill failed[/]")
    return 0 if passed else 1


def entry_point() -> None:
    sys.exit(main())
