"""Throwaway Redis and PostgreSQL servers for integration tests (real processes, no mocks).

Each server listens on a free loopback port and keeps its files in a fresh temporary
directory that is removed on :meth:`stop`. Both classes are plain synchronous objects so any
test package can wrap them in session- or function-scoped fixtures:

    with RedisServer() as redis_server:      # redis-server --port N --save '' ...
        redis_server.kill(); redis_server.start()   # SIGKILL, then restart on the same port
        redis_server.pause(); redis_server.resume()  # SIGSTOP / SIGCONT

    with PostgresServer() as pg:             # initdb + pg_ctl, as an unprivileged user if root
        pg.url                                # postgresql+asyncpg://postgres@127.0.0.1:N/postgres
        pg.stop(); pg.start()                 # pg_ctl stop -m fast / start

PostgreSQL refuses to run as root: when the tests run as root (CI containers), ``initdb`` and
``pg_ctl`` run as ``nobody`` through ``runuser`` (or ``setpriv``), owning the data directory.
Waiting for a server to accept connections is the one place these helpers sleep in real time:
a bounded poll, a few milliseconds per step.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailableError",
    "free_port",
    "serving_in_thread",
]

_START_TIMEOUT = 15.0
_POLL = 0.01
# A port from free_port() is free when chosen, not reserved: another process (a parallel test
# worker, another suite on the machine) may bind it before the server does. A server that
# chose its own port moves to a new one when its first start finds it taken.
_PORT_TRIES = 3


class ServerUnavailableError(RuntimeError):
    """The server binary is missing or the server did not come up in time."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(ready: Callable[[], bool], what: str, timeout: float = _START_TIMEOUT) -> None:
    """Poll ``ready()`` until it returns true (bounded), then return."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(_POLL)  # real-sleep-ok: waiting for a server to accept connections
    raise ServerUnavailableError(f"{what} did not become ready within {timeout} s")


@contextlib.contextmanager
def serving_in_thread(app: Any, *, port: int | None = None, timeout: float = 10.0) -> Iterator[str]:
    """``app`` on a real uvicorn server on a loopback port (free unless given), in a daemon
    thread; yields its base URL once it accepts connections, and stops it on exit."""
    import uvicorn  # only the tests that serve an app over real HTTP need it

    config = uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_until(lambda: server.started, "uvicorn", timeout)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


class _ManagedServer:
    """``with Server() as s``: started on enter; shut down on exit, or at interpreter exit if
    the test run is interrupted (no stray server processes)."""

    def start(self) -> Self:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        atexit.register(self._shutdown)
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()
        atexit.unregister(self._shutdown)


class RedisServer(_ManagedServer):
    """A ``redis-server`` child process on a free loopback port, persistence off unless
    ``appendonly`` (AOF with ``appendfsync always``: every acknowledged write is in the file
    before the reply. With ``everysec`` Redis may postpone the write while a slow fsync runs
    and still reply, so a SIGKILL on a busy machine lost an acknowledged turn)."""

    def __init__(
        self, *, port: int | None = None, binary: str | None = None, appendonly: bool = False
    ) -> None:
        found = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(found).exists():
            raise ServerUnavailableError("redis-server not found (scripts/test installs it)")
        self.binary = found
        self.port = port or free_port()
        self._may_move = port is None  # until the first start succeeds
        self.appendonly = appendonly
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start (or restart, on the same port) the server: with an empty dataset, or with
        what its AOF holds when ``appendonly``."""
        if self.running:
            return self
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="netra-redis-")
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--dir", self._dir,
            "--logfile", "",
            "--loglevel", "warning",
        ]  # fmt: skip
        for attempt in range(1, _PORT_TRIES + 1):
            args[args.index("--port") + 1] = str(self.port)
            self._proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
            )
            self._paused = False
            try:
                _wait_until(self._pong, f"redis-server on port {self.port}")
                break
            except ServerUnavailableError:
                if not self._may_move or self.running or attempt == _PORT_TRIES:
                    raise
                self.port = free_port()  # it exited at once: the port was taken meanwhile
        self._may_move = False
        return self

    def _pong(self) -> bool:
        if not self.running:
            raise ServerUnavailableError(f"redis-server on port {self.port} exited")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (data is lost: persistence is off), as a crash would."""
        proc = self._proc
        if proc is None:
            return
        if self._paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=_START_TIMEOUT)
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers (a hung server)."""
        assert self._proc is not None and self.running, "redis-server is not running"
        os.kill(self._proc.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._paused:
            os.kill(self._proc.pid, signal.SIGCONT)
            self._paused = False

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self.kill()
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _shutdown(self) -> None:
        self.stop()


def _pg_bindir() -> Path:
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if not candidates:
        raise ServerUnavailableError("PostgreSQL initdb not found (scripts/test installs it)")
    return Path(candidates[-1]).parent


def _unprivileged_prefix() -> tuple[list[str], tuple[int, int] | None]:
    """The command prefix that drops root (``runuser``/``setpriv``) and the uid/gid it uses."""
    if os.geteuid() != 0:
        return [], None
    user = pwd.getpwnam("nobody")
    ids = (user.pw_uid, user.pw_gid)
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--"], ids
    if shutil.which("setpriv"):
        return [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
        ], ids
    raise ServerUnavailableError("running as root, but neither runuser nor setpriv is available")


class PostgresServer(_ManagedServer):
    """A throwaway PostgreSQL cluster (trust auth, loopback only, fsync off)."""

    user = "postgres"

    def __init__(self, *, port: int | None = None, bindir: str | None = None) -> None:
        self.bindir = Path(bindir) if bindir else _pg_bindir()
        self.port = port or free_port()
        self._may_move = port is None  # until the first start succeeds
        self._prefix, self._ids = _unprivileged_prefix()
        self._dir: str | None = None
        self._initialised = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL for the asyncpg driver."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> str:
        assert self._dir is not None
        return os.path.join(self._dir, "data")

    def _run(self, *args: str) -> None:
        assert self._dir is not None
        result = subprocess.run(
            [*self._prefix, *args],
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            raise ServerUnavailableError(f"{Path(args[0]).name} failed: {output}")

    def _init(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="netra-pg-")
        if self._ids is not None:
            os.chown(self._dir, *self._ids)
        self._run(
            str(self.bindir / "initdb"),
            "-D", self.data_dir,
            "-U", self.user,
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )  # fmt: skip
        self._initialised = True

    def start(self) -> Self:
        """initdb on first start, then ``pg_ctl start`` (waits until it accepts connections)."""
        if not self._initialised:
            self._init()
        elif self._accepts():
            return self
        for attempt in range(1, _PORT_TRIES + 1):
            try:
                self._pg_ctl_start()
                break
            except ServerUnavailableError:
                if not self._may_move or attempt == _PORT_TRIES or not self._port_was_taken():
                    raise
                self.port = free_port()
        self._may_move = False
        _wait_until(self._accepts, f"postgres on port {self.port}")
        return self

    def _port_was_taken(self) -> bool:
        assert self._dir is not None
        log = Path(self._dir, "server.log")
        return log.exists() and "already in use" in log.read_text(errors="replace")

    def _pg_ctl_start(self) -> None:
        assert self._dir is not None
        if self._may_move:  # a first start: the log then tells why this attempt failed
            Path(self._dir, "server.log").unlink(missing_ok=True)
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -F "
            "-c max_connections=60 -c shared_buffers=16MB -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", self.data_dir,
            "-l", os.path.join(self._dir, "server.log"),
            "-o", options,
            "-w", "-t", str(int(_START_TIMEOUT)),
            "start",
        )  # fmt: skip

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>`` (keeps the data directory, so :meth:`start` resumes it)."""
        if self._dir is None or not os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            return
        self._run(str(self.bindir / "pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create a database (idempotent) and return its SQLAlchemy URL."""
        if not name.isidentifier():
            raise ValueError(f"database name must be an identifier, got {name!r}")
        sql = f"CREATE DATABASE {name}"
        psql = str(self.bindir / "psql")
        args = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres"]
        exists = subprocess.run(
            [*args, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        if exists.stdout.strip() != b"1":
            subprocess.run([*args, "-c", sql], capture_output=True, timeout=30, check=True)
        return self.url_for(name)

    def close(self) -> None:
        """Stop the server (immediately) and remove its directory."""
        with contextlib.suppress(ServerUnavailableError, subprocess.TimeoutExpired):
            self.stop("immediate")
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._initialised = False

    def _shutdown(self) -> None:
        self.close()
