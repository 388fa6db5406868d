"""``netra-resilience drill``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from netra_resilience.drill._metrics import ScenarioResult
from netra_resilience.drill._runner import DrillOptions, TargetError, run_scenarios
from netra_resilience.drill._scenarios import scenario_names, select


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netra-resilience", description="netra-resilience command line tools"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    drill = commands.add_parser(
        "drill",
        help="run the failure scenarios against an agent backend and score it",
        description="Run the nine origin failure scenarios (plus LLM stalls and malformed "
        "responses) with concurrent simulated users; print a scorecard, write an HTML "
        "report, exit 1 when a scenario breaks its thresholds.",
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


async def drill(args: argparse.Namespace) -> tuple[list[ScenarioResult], str]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    scenarios = select(args.scenario)
    options = DrillOptions(users=max(1, args.users), fault_seconds=args.fault_seconds)
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

        if args.target:
            target = args.target.rstrip("/")
            results, _ = await run_scenarios(scenarios, target, options, progress=report)
        else:
            from netra_resilience.drill._inprocess import in_process_backend

            async with in_process_backend() as url:
                target = f"in-process example backend ({url})"
                results, _ = await run_scenarios(scenarios, url, options, progress=report)
    return results, target


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``netra-resilience drill ...``); returns the exit code."""
    args = _parser().parse_args(argv)
    from rich.console import Console

    from netra_resilience.drill._report import print_scorecard, write_html

    # Wide enough for the scorecard when the output is a file or a CI log.
    console = Console() if sys.stdout.isatty() else Console(width=176)
    try:
        results, target = asyncio.run(drill(args))
    except TargetError as exc:
        console.print(f"[red]cannot drill the target:[/] {exc}")
        return 2
    print_scorecard(results, console)
    if str(args.report) != "-":
        path = write_html(results, args.report, target=target)
        console.print(f"report: {path.resolve()}")
    passed = all(result.passed for result in results)
    console.print("[green]all scenarios passed[/]" if passed else "[red]drill failed[/]")
    return 0 if passed else 1


def entry_point() -> None:
    sys.exit(main())
