"""The scorecard (a ``rich`` table) and the HTML report (a ``plotly`` timeline, inline JS)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from netra_resilience.drill._scenarios import ScenarioResult

COLUMNS = (
    "scenario",
    "requests",
    "answered",
    "degraded",
    "failed",
    "p50 ms",
    "p99 ms",
    "events dlv/exp",
    "runs done",
    "detect s",
    "recover s",
    "leaks",
    "verdict",
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _s(value: float | None, expected: bool) -> str:
    if not expected:
        return "n/a"
    return "never" if value is None else f"{value:.2f}"


def _row(r: ScenarioResult) -> list[str]:
    return [
        r.name,
        str(r.requests),
        str(r.count("answered")),
        str(r.count("degraded")),
        str(r.count("failed")),
        _ms(r.latency(50)),
        _ms(r.latency(99)),
        f"{r.events_delivered}/{r.events_expected}",
        f"{r.runs_completed}/{r.requests}",
        _s(r.detect_seconds, r.expects_detection),
        _s(r.recover_seconds, r.expects_detection),
        str(r.secrets_leaked),
        "PASS" if r.passed else "FAIL",
    ]


def scorecard_rows(results: list[ScenarioResult]) -> list[list[str]]:
    return [_row(r) for r in results]


def print_scorecard(results: list[ScenarioResult], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="netra-resilience drill scorecard", show_lines=False)
    for column in COLUMNS:
        numeric = column not in ("scenario", "verdict")
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=True, min_width=len(column)
        )
    for result, row in zip(results, scorecard_rows(results), strict=True):
        style = "green" if result.passed else "bold red"
        row[-1] = f"[{style}]{row[-1]}[/]"
        table.add_row(*row)
    console.print(table)
    for result in results:
        for reason in result.violations():
            console.print(f"[red]{result.name}[/]: {reason}")


def _timeline(results: list[ScenarioResult]) -> str:
    import plotly.graph_objects as go  # type: ignore[import-untyped]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.65, 0.35],
        vertical_spacing=0.06,
        subplot_titles=("request latency by outcome", "breaker states (from /health)"),
    )
    colours = {"answered": "#2ca02c", "degraded": "#ff7f0e", "failed": "#d62728"}
    samples = [(s, r.name) for r in results for s in r.samples]
    for outcome, colour in colours.items():
        chosen = [(s, name) for s, name in samples if s.outcome == outcome]
        figure.add_trace(
            go.Scattergl(
                x=[s.at + s.latency for s, _ in chosen],
                y=[s.latency * 1000 for s, _ in chosen],
                mode="markers",
                marker={"color": colour, "size": 4},
                name=outcome,
                text=[f"{name} {s.channel} {s.degraded or ''}" for s, name in chosen],
            ),
            row=1,
            col=1,
        )
    levels = {"closed": 0, "half_open": 1, "open": 2, "isolated": 3}
    dependencies = sorted({d for r in results for p in r.health for d in p.circuits})
    for dependency in dependencies:
        points = [(p.at, p.circuits.get(dependency)) for r in results for p in r.health]
        figure.add_trace(
            go.Scatter(
                x=[at for at, _ in points],
                y=[levels.get(state or "closed", 0) for _, state in points],
                mode="lines",
                line={"shape": "hv"},
                name=f"{dependency} breaker",
            ),
            row=2,
            col=1,
        )
    for r in results:
        figure.add_vrect(x0=r.started, x1=r.ended, line_width=0, fillcolor="#eeeeee", opacity=0.3)
        if r.fault_at is not None and r.cleared_at is not None:
            figure.add_vrect(
                x0=r.fault_at,
                x1=r.cleared_at,
                line_width=0,
                fillcolor="#d62728",
                opacity=0.08,
                annotation_text=r.name,
                annotation_position="top left",
            )
    figure.update_yaxes(title_text="ms", type="log", row=1, col=1)
    figure.update_yaxes(
        tickvals=list(levels.values()), ticktext=list(levels), range=[-0.3, 3.3], row=2, col=1
    )
    figure.update_xaxes(title_text="seconds since the drill started", row=2, col=1)
    figure.update_layout(height=720, legend={"orientation": "h"})
    html_text: str = figure.to_html(full_html=False, include_plotlyjs="inline")
    return html_text


def write_html(results: list[ScenarioResult], path: Path, *, target: str) -> Path:
    """A self-contained report (plotly's JavaScript inline: it opens without a network)."""
    rows = scorecard_rows(results)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    problems = "".join(
        f"<li><b>{html.escape(r.name)}</b>: {html.escape(v)}</li>"
        for r in results
        for v in r.violations()
    )
    passed = all(r.passed for r in results)
    document = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>netra-resilience drill report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
</style></head><body>
<h1>netra-resilience drill: {"PASS" if passed else "FAIL"}</h1>
<p>target: {html.escape(target)}</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul>{problems}</ul>
{_timeline(results)}
</body></html>
"""
    path.write_text(document, encoding="utf-8")
    return path
