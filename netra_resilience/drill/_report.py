"""The scorecard (a ``rich`` table) and the HTML report (self-describing, inline SVG, no JS).

The report is one file that opens offline: when and against what it ran, with which
settings and thresholds, the scorecard with a legend, and a timeline drawn as SVG (latency by
outcome, breaker states read from ``/health``, the fault windows numbered like the table's
rows). Points are thinned to a fixed budget, so its size does not grow with the run.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netra_resilience.drill._runner import DrillOptions
from netra_resilience.drill._scenarios import (
    MAX_DETECT_SECONDS,
    MAX_RECOVER_SECONDS,
    MIN_COMPLETED_RATIO,
    MIN_EVENT_DELIVERY,
    MIN_REPLY_RATIO,
    Sample,
    ScenarioResult,
)

COLUMNS = (
    "#",
    "scenario",
    "requests",
    "replied %",
    "clean",
    "degraded",
    "failed",
    "degraded by reason",
    "p50 ms",
    "p99 ms",
    "events dlv/exp",
    "runs done",
    "detect s",
    "recover s",
    "leaks",
    "verdict",
)

LEGEND = {
    "replied %": f"requests that got an answer, clean or degraded (threshold >= "
    f"{MIN_REPLY_RATIO:.0%})",
    "clean": "answered with no degradation flag",
    "degraded": "answered with a degradation flag (stale answer, canned reply, skipped tool...)",
    "failed": "no answer: an error status, a dropped connection or an empty reply",
    "degraded by reason": "the most frequent dependency=reason flags on degraded answers",
    "events dlv/exp": f"agent events received / numbered by the server (>= "
    f"{MIN_EVENT_DELIVERY:.1%} delivered)",
    "runs done": "runs whose event stream ended with agent_completed (all of them)",
    "detect s": f"fault on -> first response (or /health) showing it (< {MAX_DETECT_SECONDS:g} s)",
    "recover s": f"fault off -> first clean answer (or passing /health) (< "
    f"{MAX_RECOVER_SECONDS:g} s)",
    "leaks": "occurrences of the drill's secret canary in anything users received (0)",
}

REASONS_SHOWN = 3
MAX_POINTS = 6000
"""Latency points drawn in the timeline; beyond it the samples are thinned evenly."""


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _s(value: float | None, expected: bool) -> str:
    if not expected:
        return "n/a"
    return "never" if value is None else f"{value:.2f}"


def degraded_by_reason(samples: Iterable[Sample]) -> Counter[str]:
    """``dependency=reason`` -> how many degraded answers carried that flag."""
    reasons: Counter[str] = Counter()
    for sample in samples:
        if sample.outcome == "degraded":
            reasons.update(f"{dep}={reason}" for dep, reason in sample.degraded.items())
    return reasons


def _reasons(result: ScenarioResult) -> str:
    reasons = degraded_by_reason(result.samples).most_common()
    if not reasons:
        return "-"
    shown = ", ".join(f"{flag} {count}" for flag, count in reasons[:REASONS_SHOWN])
    rest = len(reasons) - REASONS_SHOWN
    return f"{shown} (+{rest} more)" if rest > 0 else shown


def _row(index: int, r: ScenarioResult) -> list[str]:
    return [
        str(index),
        r.name,
        str(r.requests),
        f"{r.replied_ratio * 100:.1f}",
        str(r.count("answered")),
        str(r.count("degraded")),
        str(r.count("failed")),
        _reasons(r),
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
    return [_row(i, r) for i, r in enumerate(results, start=1)]


def print_scorecard(results: list[ScenarioResult], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="netra-resilience drill scorecard", show_lines=False)
    # The reasons go under the table: a column of them would push the verdict off the screen.
    reasons = COLUMNS.index("degraded by reason")
    for column in COLUMNS[:reasons] + COLUMNS[reasons + 1 :]:
        numeric = column not in ("scenario", "verdict")
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=True, min_width=len(column)
        )
    for result, row in zip(results, scorecard_rows(results), strict=True):
        style = "green" if result.passed else "bold red"
        row[-1] = f"[{style}]{row[-1]}[/]"
        table.add_row(*row[:reasons], *row[reasons + 1 :])
    console.print(table)
    console.print(
        f"replied % = answered clean or degraded (threshold {MIN_REPLY_RATIO:.0%}); "
        "clean = no degradation flag"
    )
    for index, result in enumerate(results, start=1):
        if result.count("degraded"):
            console.print(f"{index}. {result.name} degraded by reason: {_reasons(result)}")
    for index, result in enumerate(results, start=1):
        if result.resumable:
            console.print(f"{index}. {result.name}: {runs_summary(result)}")
    for result in results:
        for reason in result.violations():
            console.print(f"[red]{result.name}[/]: {reason}")


def runs_summary(result: ScenarioResult) -> str:
    """A resumable-runs scenario's own counts (what the columns cannot say)."""
    return (
        f"{result.mid_run} runs in flight at the fault; runs {result.runs_preserved} preserved, "
        f"{result.runs_interrupted} interrupted, {result.runs_lost} lost; events "
        f"{result.events_lost} lost, {result.duplicated} duplicated (by seq)"
    )


# -- the timeline (SVG) ----------------------------------------------------------------------

WIDTH, LEFT, RIGHT = 1100, 70, 20
BAND, LATENCY_HEIGHT, LANE = 22, 300, 16
OUTCOME_COLOURS = {"answered": "#2ca02c", "degraded": "#ff7f0e", "failed": "#d62728"}
STATE_COLOURS = {"half_open": "#f2c300", "open": "#d62728", "isolated": "#7b3fa0"}


@dataclass(frozen=True, slots=True)
class _Axis:
    start: float
    end: float

    def x(self, at: float) -> float:
        span = (self.end - self.start) or 1.0
        return LEFT + (at - self.start) / span * (WIDTH - LEFT - RIGHT)


def _thin(samples: Sequence[tuple[Sample, str]], budget: int) -> list[tuple[Sample, str]]:
    """At most ``budget`` samples, failures first (they are what a reader looks for)."""
    failed = [s for s in samples if s[0].outcome == "failed"][:budget]
    rest = [s for s in samples if s[0].outcome != "failed"]
    room = budget - len(failed)
    if len(rest) > room:
        step = len(rest) / max(room, 1)
        rest = [rest[int(i * step)] for i in range(room)]
    return failed + rest


def _state_runs(points: Sequence[tuple[float, str]], end: float) -> list[tuple[float, float, str]]:
    """``(from, to, state)`` for every stretch a breaker was not closed."""
    runs: list[tuple[float, float, str]] = []
    for (at, state), following in zip(points, [*points[1:], (end, "closed")], strict=True):
        if state in STATE_COLOURS:
            runs.append((at, following[0], state))
    return runs


def timeline_svg(results: list[ScenarioResult]) -> str:
    if not results:
        return "<p>no scenario ran</p>"
    axis = _Axis(min(r.started for r in results), max(r.ended for r in results))
    dependencies = sorted({d for r in results for p in r.health for d in p.circuits})
    top = BAND + 10
    states_top = top + LATENCY_HEIGHT + 30
    height = states_top + LANE * max(1, len(dependencies)) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="system-ui,sans-serif" font-size="11">'
    ]
    # Scenario bands, numbered like the scorecard rows (names in the hover title).
    for index, r in enumerate(results, start=1):
        x0, x1 = axis.x(r.started), axis.x(r.ended)
        shade = "#f4f4f4" if index % 2 else "#e8e8e8"
        parts.append(
            f"<g><title>{index}. {html.escape(r.name)}</title>"
            f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 1):.1f}" height="{height - 20}" '
            f'fill="{shade}"/>'
            f'<text x="{(x0 + x1) / 2:.1f}" y="15" text-anchor="middle">{index}</text></g>'
        )
        if r.fault_at is not None and r.cleared_at is not None:
            f0, f1 = axis.x(r.fault_at), axis.x(r.cleared_at)
            parts.append(
                f'<rect x="{f0:.1f}" y="{BAND}" width="{max(f1 - f0, 1):.1f}" '
                f'height="{height - 20 - BAND}" fill="#d62728" fill-opacity="0.08"/>'
            )
    # Latency by outcome, log scale.
    samples = [(s, r.name) for r in results for s in r.samples]
    latencies = [max(s.latency, 1e-4) * 1000 for s, _ in samples] or [1.0]
    low = 10 ** math.floor(math.log10(min(latencies)))
    high = 10 ** math.ceil(math.log10(max(low * 10, *latencies)))

    def y(ms: float) -> float:
        share = (math.log10(max(ms, low)) - math.log10(low)) / (math.log10(high) - math.log10(low))
        return top + LATENCY_HEIGHT * (1 - share)

    decade = low
    while decade <= high:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" '
            f'stroke="#ccc"/><text x="{LEFT - 4}" y="{y(decade) + 4:.1f}" '
            f'text-anchor="end">{decade:g} ms</text>'
        )
        decade *= 10
    for sample, _ in _thin(samples, MAX_POINTS):
        colour = OUTCOME_COLOURS[sample.outcome]
        cx, cy = axis.x(sample.at + sample.latency), y(max(sample.latency, 1e-4) * 1000)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.6" fill="{colour}"/>')
    parts.append(f'<text x="{LEFT}" y="{top - 2}">request latency by outcome (log scale)</text>')
    # Breaker states, one lane per dependency.
    parts.append(f'<text x="{LEFT}" y="{states_top - 6}">breaker states (from /health)</text>')
    for lane, dependency in enumerate(dependencies):
        lane_y = states_top + lane * LANE
        parts.append(
            f'<text x="{LEFT - 4}" y="{lane_y + 11}" text-anchor="end">'
            f"{html.escape(dependency)}</text>"
            f'<rect x="{LEFT}" y="{lane_y + 2}" width="{WIDTH - LEFT - RIGHT}" height="{LANE - 4}"'
            ' fill="#e6f2e6"/>'
        )
        points = [(p.at, p.circuits.get(dependency, "closed")) for r in results for p in r.health]
        for start, stop, state in _state_runs(points, axis.end):
            x0, x1 = axis.x(start), axis.x(stop)
            parts.append(
                f'<rect x="{x0:.1f}" y="{lane_y + 2}" width="{max(x1 - x0, 1):.1f}" '
                f'height="{LANE - 4}" fill="{STATE_COLOURS[state]}"/>'
            )
    step = _tick_step(axis.end - axis.start)
    tick = math.ceil(axis.start / step) * step
    while tick <= axis.end:
        parts.append(
            f'<line x1="{axis.x(tick):.1f}" x2="{axis.x(tick):.1f}" y1="{height - 22}" '
            f'y2="{height - 17}" stroke="#555"/><text x="{axis.x(tick):.1f}" y="{height - 6}" '
            f'text-anchor="middle">{tick:g}</text>'
        )
        tick += step
    parts.append(f'<text x="{LEFT - 4}" y="{height - 6}" text-anchor="end">seconds</text></svg>')
    return "".join(parts)


def _tick_step(span: float) -> float:
    """1, 2 or 5 times a power of ten, giving at most about 12 ticks."""
    raw = max(span, 1e-3) / 12
    power = 10.0 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _key(colours: dict[str, str], labels: dict[str, str]) -> str:
    return " ".join(
        f'<span class="key"><i style="background:{colour}"></i>{html.escape(labels[name])}</span>'
        for name, colour in colours.items()
    )


def write_html(
    results: list[ScenarioResult],
    path: Path,
    *,
    target: str,
    options: DrillOptions | None = None,
    version: str = "",
    started: datetime | None = None,
) -> Path:
    """A self-contained, offline report: what ran, how it was judged, what happened."""
    options = options or DrillOptions()
    when = (started or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    rows = scorecard_rows(results)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    runs = "".join(
        f"<li><b>{html.escape(r.name)}</b>: {html.escape(runs_summary(r))}</li>"
        for r in results
        if r.resumable
    )
    problems = runs + "".join(
        f"<li><b>{html.escape(r.name)}</b>: {html.escape(v)}</li>"
        for r in results
        for v in r.violations()
    )
    legend = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in LEGEND.items()
    )
    settings = (
        f"{options.users} concurrent users ({options.ws_share:.0%} on the WebSocket), "
        f"faults held {options.fault_seconds:g} s, recovery watched up to "
        f"{options.max_recover_seconds:g} s; scenarios: "
        + ", ".join(html.escape(r.name) for r in results)
    )
    thresholds = (
        f"replied >= {MIN_REPLY_RATIO:.0%}, runs completed >= {MIN_COMPLETED_RATIO:.0%}, "
        f"events delivered >= {MIN_EVENT_DELIVERY:.1%}, detected < {MAX_DETECT_SECONDS:g} s, "
        f"recovered < {MAX_RECOVER_SECONDS:g} s, no secret leaks"
    )
    outcome_key = _key(
        OUTCOME_COLOURS, {"answered": "clean", "degraded": "degraded", "failed": "failed"}
    )
    state_key = _key(STATE_COLOURS, {k: k.replace("_", "-") for k in STATE_COLOURS})
    passed = all(r.passed for r in results)
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>netra-resilience drill report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}}
td:nth-child(2),td:nth-child(8){{text-align:left}}td:nth-child(8){{max-width:260px}}
dt{{font-weight:bold;float:left;clear:left;width:11em}}dd{{margin-left:12em}}
.key{{margin-right:1.5em}}.key i{{display:inline-block;width:10px;height:10px;margin-right:4px}}
</style></head><body>
<h1>netra-resilience drill: {"PASS" if passed else "FAIL"}</h1>
<p>{when} &middot; netra-resilience {html.escape(version or "?")} &middot;
target: {html.escape(target)}</p>
<p><b>settings</b>: {settings}</p>
<p><b>thresholds</b> (a scenario passes when it meets all): {html.escape(thresholds)}</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul>{problems}</ul>
<h2>timeline</h2>
<p>grey bands: scenarios (numbered as in the table); red tint: fault on.
points: {outcome_key}; breakers: {state_key} (green: closed)</p>
{timeline_svg(results)}
<h2>legend</h2><dl>{legend}</dl>
</body></html>
"""
    path.write_text(document, encoding="utf-8")
    return path
