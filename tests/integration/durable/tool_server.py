"""A real local HTTP server standing in for the tools' and the LLM's upstreams.

It applies each side effect once per ``Idempotency-Key`` (a repeated key gets the stored
answer: what an idempotent upstream does), counts every request (and each run's, by the
body's ``run``), can answer each request after ``delay`` seconds (an upstream's latency: runs
are mid-flight when a replica dies) and can hold the requests on a path unanswered until
released (calls in flight when their process dies); a repeated key is answered at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

HOLD_LIMIT = 30.0  # seconds a held request waits at most (the test releases it earlier)


class ToolServer:
    def __init__(self, *, hold: frozenset[str] = frozenset(), delay: float = 0.0) -> None:
        self.hold = frozenset(hold)
        self.delay = delay
        self.requests: Counter[str] = Counter()  # path -> requests received
        self.by_run: Counter[tuple[str, str]] = Counter()  # (path, run) -> requests received
        self.applied: Counter[str] = Counter()  # path -> side effects applied
        self.keys: dict[str, list[str | None]] = {}  # path -> Idempotency-Key of each request
        self._answers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.held = threading.Condition(self._lock)
        self.holding: Counter[str] = Counter()  # path -> requests held now or before
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                answer = server.handle(self.path, body, self.headers.get("Idempotency-Key"))
                data = json.dumps(answer).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    return  # the caller died while we held it

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def handle(self, path: str, body: dict[str, Any], key: str | None) -> Any:
        with self._lock:
            self.requests[path] += 1
            if body.get("run"):
                self.by_run[(path, str(body["run"]))] += 1
            self.keys.setdefault(path, []).append(key)
            if key is not None and key in self._answers:
                return self._answers[key]  # applied once per key
            self.applied[path] += 1
            if path == "/llm":
                answer: Any = {"text": f"answer to {body.get('prompt')}"}
            else:
                answer = {"ok": True, "path": path, "n": self.applied[path]}
            if key is not None:
                self._answers[key] = answer
            hold = path in self.hold and not self.released.is_set()
            if hold:
                self.holding[path] += 1
                self.held.notify_all()
        if hold:
            self.released.wait(HOLD_LIMIT)
        elif self.delay:
            time.sleep(self.delay)  # real-sleep-ok: the upstream's latency, in its own thread
        return answer

    def wait_holding(self, paths: set[str], count: int, timeout: float) -> bool:
        """Wait until ``count`` requests on each of ``paths`` are held."""
        with self._lock:
            return self.held.wait_for(
                lambda: all(self.holding[path] >= count for path in paths), timeout
            )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.released.set()
        self._http.shutdown()
        self._http.server_close()
