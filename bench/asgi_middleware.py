"""What the ASGI middleware costs a real server: req/s, p99 and server CPU per request.

Two uvicorn servers (1 worker, h11, asyncio loop) on loopback serve the same FastAPI app, one
plain and one with ``netra_resilience.integrations.fastapi.install`` (middleware, exception
handler, health routes, runtime in the lifespan). Debian's ``wrk`` loads them in turn:
``--rounds`` alternating rounds of ``--duration`` seconds per variant after a warm-up,
servers pinned to CPU 0 and wrk to CPU 1 when ``taskset`` and two CPUs are there. Each round
records req/s, p99 latency and the server process's CPU time per request (``/proc``), so
"slower" can be told apart from "busier"; the ratios are netra / plain per round (req/s:
below 1 = netra serves fewer; CPU and p99: above 1 = netra costs more), reported as the
median and the spread (min-max) of the rounds.

    .venv/bin/python -m bench.asgi_middleware                  # 3 rounds x 10 s per variant
    .venv/bin/python -m bench.asgi_middleware --rounds 5 --duration 10
    .venv/bin/python -m bench.asgi_middleware --in-process-only --calls 200   # no wrk needed
    .venv/bin/python -m bench.asgi_middleware --instructions-only   # valgrind, ~5-10 min

``--instructions`` (or ``--instructions-only``) also runs both servers under ``valgrind
--tool=callgrind`` and counts the user-space instructions per request over a fixed number of
requests (1 and 16 connections): unlike req/s and CPU time on a shared machine, that count
barely moves with the load, so it is what tells a 2 % cost from noise.

It also times both apps in-process (ASGI calls without a server, alternating rounds, the
cyclic GC left on as in a server) and counts the GC collections each app causes under
uvicorn: the middleware's own cost in microseconds, and why a server can pay more than that
(objects alive for the whole request, times the requests in flight, push the collector's
generation-0 count over its threshold; see the README's performance section).

Not run by the tests at these settings (~70 s, needs /usr/bin/wrk); the smoke test runs the
in-process part.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from bench._harness import summary

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("plain", "netra")
LABELS = {"plain": "plain FastAPI", "netra": "with install()"}


def _app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app


def plain_app() -> FastAPI:
    """The application alone."""
    return _gc_counted(_app())


def netra_app() -> FastAPI:
    """The same application with netra-resilience installed."""
    from netra_resilience import Dependency, Resilience
    from netra_resilience.integrations.fastapi import install

    app = _app()
    resilience = Resilience(
        dependencies=[Dependency("postgres", "critical"), Dependency("llm", "important")]
    )
    install(app, resilience)
    return _gc_counted(app)


def _gc_counted(app: FastAPI) -> FastAPI:
    """``GET /_gc``: the server's GC collections per generation so far and the thread CPU
    seconds they took (read between rounds; a callback times each collection)."""
    seconds = [0.0, 0.0, 0.0]
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            seconds[info["generation"]] += time.thread_time() - started[0]

    gc.callbacks.append(timed)

    @app.get("/_gc")
    async def collections() -> dict[str, list[float]]:
        return {
            "collections": [stat["collections"] for stat in gc.get_stats()],
            "seconds": seconds,
        }

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


def _serve(factory: str, port: int, prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
    command = [
        *(_pin(0) if prefix is None else prefix),
        sys.executable, "-m", "uvicorn", f"bench.asgi_middleware:{factory}", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL if prefix else None)


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


@dataclass(frozen=True)
class Round:
    requests: int
    rps: float
    p99_ms: float
    user_us: float  # server CPU per request in user space; NaN without /proc
    sys_us: float  # ... and in the kernel (syscalls, interrupts on its behalf)
    syscalls: float  # per request (perf's raw_syscalls tracepoint); NaN without perf

    @property
    def cpu_us(self) -> float:
        return self.user_us + self.sys_us


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    rounds: list[Round] = field(default_factory=list)

    def cpu_seconds(self) -> tuple[float, float]:
        """utime and stime of the server process, from /proc (NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan"), float("nan")
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def gc_stats(self) -> tuple[list[int], list[float]]:
        """GC collections per generation so far, and the CPU seconds they took."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_gc", timeout=5) as response:
            stats = json.loads(response.read())
        return [int(n) for n in stats["collections"]], [float(t) for t in stats["seconds"]]


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(wrk: str, port: int, duration: int, connections: int) -> tuple[float, int, float]:
    """req/s, requests completed and p99 latency (ms) of one wrk run."""
    command = [
        *_pin(1), wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
        f"http://127.0.0.1:{port}/ok",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    if rps is None or done is None or p99 is None:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return float(rps[1]), int(done[1]), float(p99[1]) * _UNITS_MS[p99[2]]


def _syscall_counter(pid: int) -> subprocess.Popen[str] | None:
    """``perf stat`` counting the server's system calls until stopped (SIGINT), or ``None``
    when perf or its tracepoint is not available (then the column reads nan)."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    command = [perf, "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid)]
    counter = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # attached before the load starts
    return counter if counter.poll() is None else None


def _syscalls(counter: subprocess.Popen[str] | None) -> float:
    if counter is None:
        return float("nan")
    counter.send_signal(signal.SIGINT)
    _, err = counter.communicate(timeout=10)
    count = re.search(r"^(\d+),", err, re.MULTILINE)
    return float(count[1]) if count else float("nan")


def _round(wrk: str, server: Server, duration: int, connections: int, syscalls: bool) -> Round:
    counter = _syscall_counter(server.process.pid) if syscalls else None
    user, system = server.cpu_seconds()
    rps, requests, p99 = _wrk(wrk, server.port, duration, connections)
    user_after, system_after = server.cpu_seconds()
    calls = _syscalls(counter)  # includes the few of the idle 0.3 s before the load
    per_request = 1e6 / requests
    return Round(
        requests,
        rps,
        p99,
        (user_after - user) * per_request,
        (system_after - system) * per_request,
        calls / requests,
    )


async def _fixed_load(port: int, requests: int, connections: int) -> None:
    """``requests`` GETs of ``/ok`` over ``connections`` keep-alive connections, one in
    flight per connection (as wrk does), and nothing else: a fixed amount of server work."""

    async def one_connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n"
        try:
            for _ in range(count):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected answer: {head[:60]!r}")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
        finally:
            writer.close()

    share = requests // connections
    await asyncio.gather(*(one_connection(share) for _ in range(connections)))


def _callgrind(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], capture_output=True, check=True)


def _instructions_per_request(
    server: Server, dump: Path, part: int, requests: int, connections: int
) -> float:
    """Instructions the server executed for ``requests`` requests over ``connections``
    connections, per request: counters zeroed after a warm-up, dumped (as part ``part`` of
    the callgrind output) after the load."""
    asyncio.run(_fixed_load(server.port, max(requests // 4, connections), connections))
    _callgrind("-z", server.process.pid)
    asyncio.run(_fixed_load(server.port, requests, connections))
    _callgrind("-d", server.process.pid)
    path = dump.parent / f"{dump.name}.{server.process.pid}.{part}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        totals = re.search(r"^totals:\s+(\d+)", path.read_text(), re.MULTILINE) if (
            path.exists()
        ) else None  # fmt: skip
        if totals:
            return int(totals[1]) / (requests // connections * connections)
        time.sleep(0.5)
    raise RuntimeError(f"no callgrind dump from {server.name}")


def instructions(args: argparse.Namespace) -> None:
    """Both servers under ``valgrind --tool=callgrind``: user-space instructions per request
    (uvicorn + h11 + Starlette + the app, not the kernel). Unlike CPU time this barely
    depends on what else the machine is doing, so a few per cent can be told from noise.
    Barely: with 16 connections, how many ready sockets one event-loop pass serves still
    varies with timing (~1 %); one connection serves them one by one, the same every run."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        if args.instructions_only:
            sys.exit("valgrind not found (apt-get install valgrind)")
        print("instructions per request: not counted (no valgrind; apt-get install valgrind)")
        return
    loads = sorted({1, args.connections})
    counts: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        dumps = {name: Path(tmp) / name for name in VARIANTS}
        servers = [
            Server(name, port, _serve(f"{name}_app", port, _valgrind(dumps[name])))
            for name, port in ((name, _free_port()) for name in VARIANTS)
        ]
        try:
            for server in servers:  # both start at once: import under valgrind is slow
                _wait_ready(server.port, timeout=900)
            part = 0
            for round_ in range(args.instruction_rounds):
                for connections in loads:
                    part += 1
                    for server in servers if round_ % 2 == 0 else reversed(servers):
                        counts.setdefault((server.name, connections), []).append(
                            _instructions_per_request(
                                server, dumps[server.name], part, args.instruction_requests,
                                connections,
                            )
                        )  # fmt: skip
        finally:
            for server in servers:
                server.process.terminate()
            for server in servers:
                server.process.wait(timeout=60)
    print(
        f"uvicorn under callgrind: user-space instructions per request, "
        f"{args.instruction_rounds} rounds x {args.instruction_requests} requests per variant "
        f"after a warm-up, median (min to max)"
    )
    for connections in loads:
        plain, netra = counts["plain", connections], counts["netra", connections]
        extra = [n - p for p, n in zip(plain, netra, strict=True)]
        print(
            f"  {connections:>2} connection(s): plain {_spread(plain, ',.0f')}, with install() "
            f"{_spread(netra, ',.0f')} -> {_spread(extra, '+,.0f')} per request "
            f"({100 * (statistics.median(netra) / statistics.median(plain) - 1):+.2f} %)"
        )
        summary(
            f"ASGI under uvicorn, {connections} connection(s): instructions per request "
            f"(callgrind, user space; median of {args.instruction_rounds} rounds)",
            f"{statistics.median(netra) / 1000:,.1f}k",
            f"plain FastAPI {statistics.median(plain) / 1000:,.1f}k",
            statistics.median(netra) / statistics.median(plain),
        )


def _valgrind(dump: Path) -> list[str]:
    return [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}.%p", "--dump-instr=no",
    ]  # fmt: skip


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


async def in_process(rounds: int = 9, calls: int = 3000) -> dict[str, float]:
    """Median process-CPU microseconds per request per app, ASGI calls without a server."""
    apps = {"plain": plain_app(), "netra": netra_app()}
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for round_ in range(rounds + 1):
        for name, app in apps.items() if round_ % 2 else reversed(apps.items()):
            gc.collect()
            start = time.process_time()
            for _ in range(calls):
                await app(_scope(), _receive, _send)
            elapsed = (time.process_time() - start) / calls * 1e6
            if round_:  # round 0 warms up
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def _spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)} to " + (
        f"{format(max(values), fmt)})"
    )


@dataclass(frozen=True)
class GcUse:
    """What the cyclic GC did in one server over the measured rounds."""

    collections: list[int]  # per generation
    seconds: list[float]  # thread CPU time spent collecting, per generation


def _report(servers: list[Server], gcs: dict[str, GcUse], args: argparse.Namespace) -> None:
    print(
        f"uvicorn (1 worker, h11) + wrk -t1 -c{args.connections}, {args.rounds} alternating "
        f"rounds x {args.duration} s per variant; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average before {args.load_before}; "
        "each cell: median (min to max) of the rounds"
    )
    columns = (
        ("req/s", lambda r: r.rps, ",.0f"),
        ("p99 ms", lambda r: r.p99_ms, ".2f"),
        ("CPU us/req", lambda r: r.cpu_us, ".1f"),
        ("user us/req", lambda r: r.user_us, ".1f"),
        ("sys us/req", lambda r: r.sys_us, ".1f"),
        ("syscalls/req", lambda r: r.syscalls, ".2f"),
    )
    cells = {
        server.name: [_spread([get(r) for r in server.rounds], fmt) for _, get, fmt in columns]
        for server in servers
    }
    widths = [
        max(len(title), *(len(cells[s.name][i]) for s in servers)) + 2
        for i, (title, _, _) in enumerate(columns)
    ]
    titles = (title for title, _, _ in columns)
    print(f"{'variant':<16}" + "".join(f"{t:>{w}}" for t, w in zip(titles, widths, strict=True)))
    for server in servers:
        print(
            f"{LABELS[server.name]:<16}"
            + "".join(f"{c:>{w}}" for c, w in zip(cells[server.name], widths, strict=True))
        )
    plain, netra = servers
    pairs = list(zip(plain.rounds, netra.rounds, strict=True))
    rps = [n.rps / p.rps for p, n in pairs]
    p99 = [n.p99_ms / p.p99_ms for p, n in pairs]
    print(
        "per round, with install() vs plain (median (min to max) of the rounds):\n"
        f"  req/s      {_spread([100 * (r - 1) for r in rps], '+.1f')} %  (below 0 = fewer)\n"
        f"  p99        {_spread([100 * (r - 1) for r in p99], '+.1f')} %  (above 0 = slower)\n"
        f"  CPU        {_spread([n.cpu_us - p.cpu_us for p, n in pairs], '+.1f')} us/request\n"
        f"  user       {_spread([n.user_us - p.user_us for p, n in pairs], '+.1f')} us/request\n"
        f"  sys        {_spread([n.sys_us - p.sys_us for p, n in pairs], '+.1f')} us/request\n"
        f"  syscalls   {_spread([n.syscalls - p.syscalls for p, n in pairs], '+.2f')} per request"
    )
    # bench.run's rows: time per request (1 / req/s), p99 and CPU, netra / plain.
    times = sorted(1 / r for r in rps)  # per-round time-per-request ratios
    summary(
        f"ASGI under wrk: time per request (1 / req/s), median of {len(rps)} rounds "
        f"(rounds {times[0]:.2f}-{times[-1]:.2f})",
        f"{statistics.median([r.rps for r in netra.rounds]):,.0f} req/s",
        f"plain FastAPI {statistics.median([r.rps for r in plain.rounds]):,.0f} req/s",
        statistics.median(times),
    )
    summary(
        "ASGI under wrk: p99 latency",
        f"{statistics.median([r.p99_ms for r in netra.rounds]):.2f} ms",
        f"plain FastAPI {statistics.median([r.p99_ms for r in plain.rounds]):.2f} ms",
        statistics.median(p99),
    )
    netra_cpu = statistics.median([r.cpu_us for r in netra.rounds])
    plain_cpu = statistics.median([r.cpu_us for r in plain.rounds])
    summary(
        "ASGI under wrk: server CPU (user + sys) per request",
        f"{netra_cpu:.1f} us",
        f"plain FastAPI {plain_cpu:.1f} us",
        netra_cpu / plain_cpu,
    )
    requests = {s.name: sum(r.requests for r in s.rounds) for s in servers}
    print(
        "GC collections per 10k requests (gen0/gen1/gen2) and GC CPU per request: "
        + ", ".join(
            f"{LABELS[name]} "
            + "/".join(f"{n * 10_000 / requests[name]:.1f}" for n in gcs[name].collections)
            + f" {sum(gcs[name].seconds) * 1e6 / requests[name]:.2f} us"
            for name in VARIANTS
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--calls", type=int, default=3000, help="in-process calls per round")
    parser.add_argument("--in-process-only", action="store_true", help="no server, no wrk")
    parser.add_argument(
        "--no-syscalls", dest="syscalls", action="store_false",
        help="do not count the servers' system calls (perf stat) during the rounds",
    )  # fmt: skip
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    parser.add_argument("--instructions-only", action="store_true", help="no wrk, no timing")
    parser.add_argument("--instruction-requests", type=int, default=1600)
    parser.add_argument("--instruction-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.instructions_only:
        instructions(args)
        return
    if not args.in_process_only:
        _serve_and_load(args)
        if args.instructions:
            instructions(args)
    us = asyncio.run(in_process(calls=args.calls))
    print(
        f"in-process ASGI (process CPU, GC on, 9 alternating rounds x {args.calls}): plain "
        f"{us['plain']:.1f} us/request, with install() {us['netra']:.1f} us "
        f"-> middleware {us['netra'] - us['plain']:+.1f} us"
    )
    summary(
        "ASGI in-process (no server): CPU per request",
        f"{us['netra']:.1f} us",
        f"plain FastAPI {us['plain']:.1f} us",
        us["netra"] / us["plain"],
    )


def _serve_and_load(args: argparse.Namespace) -> None:
    args.load_before = ", ".join(f"{n:.2f}" for n in os.getloadavg())
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    if not Path(wrk).exists():
        sys.exit("wrk not found (apt-get install wrk), or use --in-process-only")
    servers = [Server(name, port, _serve(f"{name}_app", port)) for name, port in
               ((name, _free_port()) for name in VARIANTS)]  # fmt: skip
    try:
        for server in servers:
            _wait_ready(server.port)
            _wrk(wrk, server.port, args.warmup, args.connections)
        start = {server.name: server.gc_stats() for server in servers}
        for round_ in range(args.rounds):
            for server in servers if round_ % 2 == 0 else reversed(servers):
                server.rounds.append(
                    _round(wrk, server, args.duration, args.connections, args.syscalls)
                )
        gcs: dict[str, GcUse] = {}
        for s in servers:
            (counts_before, seconds_before), (counts, seconds) = start[s.name], s.gc_stats()
            gcs[s.name] = GcUse(
                [b - a for a, b in zip(counts_before, counts, strict=True)],
                [b - a for a, b in zip(seconds_before, seconds, strict=True)],
            )
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            server.process.wait(timeout=10)
    _report(servers, gcs, args)


if __name__ == "__main__":
    main()
