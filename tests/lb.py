"""A real HAProxy in front of real replicas of the example backend (processes, loopback only).

    with BackendReplica(env) as a, BackendReplica(env) as b, HAProxyServer([a.port, b.port]) as lb:
        lb.url                      # http://127.0.0.1:N, round robin over the live replicas
        lb.sessions()               # [sessions on a, on b] now (HAProxy's stats socket)
        a.set_fault("llm", {"kind": "latency", "seconds": 4})  # a's demo switch (NETRA_DEMO=1)
        lb.busiest([a, b]).kill()   # SIGKILL the one carrying most: it dies as a crash would

HAProxy health-checks each replica's ``/health/live`` every 100 ms (down after three failed
checks: a killed replica refuses at once, while a replica slowed by a loaded machine gets 2 s
per check before it counts as failed, so it keeps its share of the clients), redispatches a
refused connection to the other server, and keeps WebSocket tunnels open for as long as the
test needs. Its stats socket tells how many replicas its checks hold up (``start`` returns once
all are: a replica still down at the first connects would get none of them) and each one's
current sessions. Like ``tests/servers.py``, starting is the one place these helpers
wait in real time (a bounded poll).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers import ServerUnavailableError, _wait_until, free_port

__all__ = ["BackendReplica", "HAProxyServer"]

ROOT = Path(__file__).resolve().parent.parent


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class _Process:
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (no shutdown of any kind), then reap."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None

    def __enter__(self) -> Self:
        atexit.register(self.stop)
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        atexit.unregister(self.stop)


class BackendReplica(_Process):
    """``python -m examples.agent_backend`` on a free port with ``env`` (NETRA_* settings)."""

    def __init__(self, env: Mapping[str, str], *, name: str = "replica") -> None:
        self.port = free_port()
        self.name = name
        self.env = {**os.environ, **env, "PORT": str(self.port), "PYTHONPATH": str(ROOT)}

    def start(self) -> Self:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "examples.agent_backend"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(self._ready, f"example backend {self.name} on port {self.port}", 30.0)
        return self

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerUnavailableError(f"example backend {self.name} exited at startup")
        return _listening(self.port)

    @property
    def url(self) -> str:
        """This replica itself, bypassing the balancer."""
        return f"http://127.0.0.1:{self.port}"

    def set_fault(self, dependency: str, fault: Mapping[str, object]) -> None:
        """``POST /demo/faults/{dependency}`` on this replica only (``NETRA_DEMO=1`` in its
        env): e.g. ``("llm", {"kind": "latency", "seconds": 4})`` holds every run in its
        model call, so runs overlap however slowly a loaded machine starts the clients."""
        import httpx

        httpx.post(
            f"{self.url}/demo/faults/{dependency}", json=dict(fault), timeout=5
        ).raise_for_status()

    def clear_faults(self) -> None:
        """``DELETE /demo/faults`` on this replica only (calls already delayed stay so)."""
        import httpx

        httpx.delete(f"{self.url}/demo/faults", timeout=5).raise_for_status()


_CONFIG = """\
global
    maxconn 4096
    stats socket {stats} mode 600 level user
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout tunnel 60s
    timeout check 2s
    retries 2
    option redispatch
frontend agents
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health/live
    default-server inter 100ms fall 3 rise 2 on-marked-down shutdown-sessions
{servers}
"""


class HAProxyServer(_Process):
    """``haproxy`` (Debian's package; scripts/test installs it) balancing ``ports``."""

    def __init__(self, ports: Sequence[int], *, binary: str | None = None) -> None:
        found = binary or shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(found).exists():
            raise ServerUnavailableError("haproxy not found (scripts/test installs it)")
        self.binary = found
        self.port = free_port()
        self.ports = list(ports)
        self._dir: str | None = None
        self._stats = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._dir = tempfile.mkdtemp(prefix="netra-haproxy-")
        servers = "\n".join(
            f"    server r{n} 127.0.0.1:{port} check" for n, port in enumerate(self.ports)
        )
        config = Path(self._dir) / "haproxy.cfg"
        self._stats = str(Path(self._dir) / "stats.sock")
        config.write_text(_CONFIG.format(port=self.port, servers=servers, stats=self._stats))
        self._proc = subprocess.Popen(
            [self.binary, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(self._ready, f"haproxy on port {self.port}")
        # every replica up in HAProxy's own view before a client connects (a replica still
        # down at the first connects would get none of them)
        _wait_until(lambda: self.servers_up() == len(self.ports), "haproxy seeing every replica")
        return self

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerUnavailableError("haproxy exited at startup")
        return _listening(self.port)

    def _stat_rows(self) -> list[list[str]]:
        """HAProxy's ``show stat`` for the replicas (its stats socket); [] if unreadable."""
        try:
            with socket.socket(socket.AF_UNIX) as stats:
                stats.settimeout(1.0)
                stats.connect(self._stats)
                stats.sendall(b"show stat\n")
                data = b""
                while chunk := stats.recv(65536):
                    data += chunk
        except OSError:
            return []
        rows = [line.split(",") for line in data.decode().splitlines() if line[:1] not in "#"]
        return [r for r in rows if len(r) > 17 and r[0] == "replicas" and r[1].startswith("r")]

    def servers_up(self) -> int:
        """How many replicas HAProxy's checks hold up right now."""
        return sum(1 for row in self._stat_rows() if row[17].startswith("UP"))

    def sessions(self) -> list[int]:
        """Each replica's current sessions through HAProxy (``scur``), in ``ports`` order."""
        current = {row[1]: int(row[4] or 0) for row in self._stat_rows()}
        return [current.get(f"r{n}", 0) for n in range(len(self.ports))]

    def busiest(self, replicas: Sequence[BackendReplica]) -> BackendReplica:
        """The live one of ``replicas`` with the most sessions through HAProxy right now: the
        one to SIGKILL (on a loaded machine the balancer may have moved every client off a
        replica slowed past its checks; killing one that carries none would test nothing)."""
        current = dict(zip(self.ports, self.sessions(), strict=True))
        live = [replica for replica in replicas if replica.alive]
        if not live:
            raise ValueError("no live replica among those given")
        return max(live, key=lambda replica: current.get(replica.port, 0))

    def stop(self) -> None:
        super().stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
