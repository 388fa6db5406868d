"""A real HAProxy in front of real replicas of the example backend (processes, loopback only).

    with BackendReplica(env) as a, BackendReplica(env) as b, HAProxyServer([a.port, b.port]) as lb:
        lb.url                      # http://127.0.0.1:N, round robin over the live replicas
        a.kill()                    # SIGKILL: the replica dies mid-run, as a crash would

HAProxy health-checks each replica's ``/health/live`` every 100 ms (down after three failed
checks: a killed replica refuses at once, while a replica slowed by a loaded machine gets 2 s
per check before it counts as failed, so it keeps its share of the clients), redispatches a
refused connection to the other server, and keeps WebSocket tunnels open for as long as the
test needs. Like ``tests/servers.py``, starting is the one place these helpers
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


_CONFIG = """\
global
    maxconn 4096
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._dir = tempfile.mkdtemp(prefix="netra-haproxy-")
        servers = "\n".join(
            f"    server r{n} 127.0.0.1:{port} check" for n, port in enumerate(self.ports)
        )
        config = Path(self._dir) / "haproxy.cfg"
        config.write_text(_CONFIG.format(port=self.port, servers=servers))
        self._proc = subprocess.Popen(
            [self.binary, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(self._ready, f"haproxy on port {self.port}")
        return self

    def _ready(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerUnavailableError("haproxy exited at startup")
        return _listening(self.port)

    def stop(self) -> None:
        super().stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
