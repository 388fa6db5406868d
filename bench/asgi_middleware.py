"""What the ASGI middleware costs a real server: requests/s with and without it, same run.

Two uvicorn servers on loopback serve the same FastAPI app, one plain and one with
``netra_resilience.integrations.fastapi.install`` (middleware, exception handler, health
routes). Debian's ``wrk`` loads them in turn (alternating order, ``--rounds`` (4) x
``--duration`` seconds each, after a warm-up), servers pinned to one CPU and wrk to another
when ``taskset`` and two CPUs are available. Prints a table and the req/s ratio.

    .venv/bin/python -m bench.asgi_middleware            # 4 rounds x 5 s per variant
    .venv/bin/python -m bench.asgi_middleware --rounds 5 --duration 10

It also times both apps in-process (ASGI calls without a server, paired rounds), which
gives the middleware's own cost in microseconds per request, robust to a busy machine.

Not run by the tests (it takes ~40 s and needs /usr/bin/wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent


def _app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app


def plain_app() -> FastAPI:
    """The application alone."""
    return _app()


def netra_app() -> FastAPI:
    """The same application with netra-resilience installed."""
    from netra_resilience import Dependency, Resilience
    from netra_resilience.integrations.fastapi import install

    app = _app()
    resilience = Resilience(
        dependencies=[Dependency("postgres", "critical"), Dependency("llm", "important")]
    )
    install(app, resilience)
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: int) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return []
    return [taskset, "-c", str(cpu)]


def _serve(factory: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        *_pin(0),
        sys.executable, "-m", "uvicorn", f"bench.asgi_middleware:{factory}", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT)


def _wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def _wrk(wrk: str, port: int, duration: int, connections: int) -> float:
    command = [
        *_pin(1), wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
        f"http://127.0.0.1:{port}/ok",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return float(match.group(1))


def _scope() -> dict[str, object]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/ok", "raw_path": b"/ok", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip


async def _receive() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: object) -> None:
    return None


async def _in_process(rounds: int = 9, n: int = 3000) -> tuple[float, float]:
    """Median microseconds per request (plain, with install()), ASGI calls without a server."""
    apps = {"plain": plain_app(), "netra": netra_app()}
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for round_ in range(rounds + 1):
        for name, app in apps.items() if round_ % 2 else reversed(apps.items()):
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            for _ in range(n):
                await app(_scope(), _receive, _send)
            elapsed = (time.perf_counter() - start) / n * 1e6
            gc.enable()
            if round_:  # round 0 warms up
                samples[name].append(elapsed)
    return statistics.median(samples["plain"]), statistics.median(samples["netra"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    if not Path(wrk).exists():
        sys.exit("wrk not found (apt-get install wrk)")
    ports = {"plain": _free_port(), "netra": _free_port()}
    servers = [_serve(f"{name}_app", port) for name, port in ports.items()]
    try:
        for port in ports.values():
            _wait_ready(port)
            _wrk(wrk, port, args.warmup, args.connections)
        results: dict[str, list[float]] = {"plain": [], "netra": []}
        for round_ in range(args.rounds):
            order = ["plain", "netra"] if round_ % 2 == 0 else ["netra", "plain"]
            for name in order:
                results[name].append(_wrk(wrk, ports[name], args.duration, args.connections))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
    plain_us, netra_us = asyncio.run(_in_process())
    plain, netra = statistics.median(results["plain"]), statistics.median(results["netra"])
    ratios = [n / p for p, n in zip(results["plain"], results["netra"], strict=True)]
    print(f"uvicorn (1 worker) + wrk -t1 -c{args.connections}, {args.rounds} x {args.duration} s")
    print(f"{'variant':<22}{'median req/s':>14}   rounds")
    print(
        f"{'plain FastAPI':<22}{plain:>14,.0f}   "
        + ", ".join(f"{r:,.0f}" for r in results["plain"])
    )
    print(
        f"{'with install()':<22}{netra:>14,.0f}   "
        + ", ".join(f"{r:,.0f}" for r in results["netra"])
    )
    print(
        f"ratio (median of rounds): {statistics.median(ratios):.3f}  "
        f"-> {100 * (1 - statistics.median(ratios)):+.1f} % req/s lost"
    )
    print(
        f"in-process ASGI: plain {plain_us:.1f} us/request, with install() {netra_us:.1f} us "
        f"-> middleware {netra_us - plain_us:+.1f} us = "
        f"{100 * (netra_us - plain_us) * plain / 1e6:.1f} % of a request at {plain:,.0f} req/s"
    )


if __name__ == "__main__":
    main()
