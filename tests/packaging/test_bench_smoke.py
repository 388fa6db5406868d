"""Every benchmark entry imports and runs (tiny iteration counts; no timing is asserted).

Speed is measured by ``python -m bench.run``, never asserted here: these only keep the
benchmarks runnable and their summary rows well formed (netra / reference, one direction).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench import (
    adapters,
    admission,
    asgi_middleware,
    budgets,
    core,
    durable_runs,
    engine_overhead,
    llm_config,
    llm_transport,
    redis_limiter,
    routing,
    run,
    state_backends,
)
from tests.servers import serving_in_thread

ENTRIES: dict[str, tuple[Callable[[list[str]], object], list[str]]] = {
    "adapters": (adapters.main, ["--calls", "1", "--rounds", "1", "--warmup", "1"]),
    "core": (core.main, ["--calls", "20", "--rounds", "1"]),
    "admission": (
        admission.main,
        ["--seconds", "1", "--requests", "40", "--calls", "20", "--rounds", "1", "--seeds", "1"],
    ),
    "budgets": (budgets.main, ["--calls", "20", "--ops", "20"]),
    "llm_config": (llm_config.main, ["--calls", "20", "--rounds", "1", "--entries", "200"]),
    "engine_overhead": (engine_overhead.main, ["--calls", "5", "--rounds", "1"]),
    "durable_runs": (durable_runs.main, ["--runs", "2", "--rounds", "1"]),
    "llm_transport": (
        llm_transport.cli,
        ["--calls", "5", "--rounds", "1", "--samples", "5"],
    ),
    "redis_limiter": (
        redis_limiter.main,
        [
            "--acquisitions",
            "64",
            "--rounds",
            "1",
            "--rate",
            "400",
            "--processes",
            "2",
            "--seconds",
            "0.2",
        ],
    ),
    "routing": (routing.main, ["--calls", "20"]),
    "state_backends": (state_backends.cli, ["--ops", "3"]),
    "asgi_middleware": (asgi_middleware.main, ["--in-process-only", "--calls", "3"]),
}


def rows(output: str) -> list[run.Line]:
    return run.summary_lines(run.Run("x", 0, output, 0.0))


@pytest.fixture
def _suite_heap_frozen() -> Iterator[None]:
    """The harness runs a full ``gc.collect()`` before each timed round; inside the test run
    the heap holds every framework the suite imported (~0.3 s a collection, ~40 per entry),
    so what is already allocated is moved out of the collector's reach while the entry runs."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("name", sorted(ENTRIES))
@pytest.mark.usefixtures("_suite_heap_frozen")
def test_benchmark_runs_and_prints_summary_rows(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entry, argv = ENTRIES[name]
    entry(argv)
    found = rows(capsys.readouterr().out)
    assert found, f"bench.{name} printed no SUMMARY row"
    for line in found:
        assert line.measure and line.netra
        # A number (any sign: at tiny counts a paired difference can be noise) or "-".
        assert line.ratio == "-" or isinstance(float(line.ratio), float)


def test_every_benchmark_module_has_an_entry_here() -> None:
    assert set(run.discover()) == set(ENTRIES)


def test_run_table_keeps_rows_and_names_the_direction(capsys: pytest.CaptureFixture[str]) -> None:
    output = "noise\nSUMMARY\tretry alone\t1.00 us\tpeer 2.00 us\t0.50\nSUMMARY\tbad\n"
    runs = [run.Run("core", 0, output, 1.0)]
    run.print_table(rows(output), runs)
    table = capsys.readouterr().out
    assert "ratio = netra / reference" in table
    assert "retry alone" in table and "0.50" in table
    assert "bad" not in table


@pytest.mark.parametrize("factory", [asgi_middleware.plain_app, asgi_middleware.netra_app])
def test_asgi_fixed_load_sends_exactly_the_requests_it_counts(factory: Callable[[], Any]) -> None:
    """The instruction count divides by the requests sent: the client must send exactly
    that many, all answered, over the connections asked for (a real uvicorn server)."""
    served: list[str] = []
    app = factory()

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            served.append(scope["client"][1])
        await app(scope, receive, send)

    port = asgi_middleware._free_port()
    with serving_in_thread(counting, port=port):
        asyncio.run(asgi_middleware._fixed_load(port, 96, 4))
    assert len(served) == 96
    assert len(set(served)) == 4  # four keep-alive connections (client ports), 24 each
    assert all(served.count(client) == 24 for client in set(served))
