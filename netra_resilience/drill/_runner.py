"""Drives a target: simulated users, the fault/recovery phases of a scenario, the target.

* users: one chat turn over HTTP (``POST /v1/chat``) or a WebSocket, measured and checked
  for the secret canary;
* :class:`ScenarioRun`: warm-up, fault, recovery against a base URL while the users talk;
* :func:`in_process_backend`: the default target, the example backend served by uvicorn
  inside the drill's own process.

Third-party libraries (httpx, websockets, uvicorn) are imported where they are used, so the
command line can name the missing extra instead of failing on import.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netra_resilience.drill._scenarios import HealthPoint, Outcome, Sample, Scenario, ScenarioResult

if TYPE_CHECKING:
    import httpx

REQUEST_TIMEOUT = 30.0
THINK_TIME = 0.02
HEALTH_INTERVAL = 0.2
RUN_BOUND = 60.0
"""Seconds a resumable run may take, reconnects included, before it counts as lost."""
RECONNECT_PAUSE = 0.1


class _InFlight:
    """Resumable runs in flight now; ``enough`` is set once ``threshold`` were at once."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.now = 0
        self.enough = asyncio.Event()

    def started(self) -> None:
        self.now += 1
        if self.now >= self.threshold:
            self.enough.set()

    def ended(self) -> None:
        self.now -= 1


class TargetError(RuntimeError):
    """The target cannot be drilled (unreachable, without demo mode, or not available)."""


def install_hint(package: str, extra: str) -> str:
    """What to say when ``package`` (of the ``extra``) is not installed."""
    return f'needs the {package!r} package: pip install "netra-resilience[{extra}]"'


# -- users: one chat turn ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Turn:
    """What one chat turn returned, before the runner stamps it with time and phase."""

    latency: float
    outcome: Outcome
    degraded: dict[str, str]
    events: int
    expected_events: int  # the final event's seq: how many the server numbered for the run
    completed: bool
    leaked: int


def _outcome(status: object, answer: object) -> Outcome:
    if not isinstance(answer, str) or not answer.strip():
        return "failed"
    if status == "ok":
        return "answered"
    if status == "degraded":
        return "degraded"
    return "failed"


def _failed(started: float, leaked: int = 0) -> Turn:
    return Turn(time.perf_counter() - started, "failed", {}, 0, 0, False, leaked)


def _expected(final: dict[str, Any], received: int) -> int:
    seq = final.get("seq")
    return seq if isinstance(seq, int) and seq > 0 else received


def _run_turn(latency: float, seqs: list[int], final: dict[str, Any] | None, leaked: int) -> Turn:
    """A resumable run as one turn: answered (its real answer), degraded (a degraded answer,
    or interrupted: the user was told) or failed (no final event: lost)."""
    expected = max(seqs, default=0)
    if final is None:
        return Turn(latency, "failed", {}, len(set(seqs)), max(expected, 1), False, leaked)
    raw = final.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    status = str(data.get("status", ""))
    degradation = final.get("degradation")
    degraded = (
        {str(k): str(v) for k, v in degradation.items()} if isinstance(degradation, dict) else {}
    )
    outcome: Outcome = "answered" if status == "ok" else "degraded"
    if status not in {"ok", "degraded", "interrupted"}:
        outcome = "failed"
    return Turn(latency, outcome, degraded, len(set(seqs)), expected, True, leaked)


async def http_turn(client: httpx.AsyncClient, user_id: str, message: str, canary: str) -> Turn:
    """``POST /v1/chat``; the reply must carry its events, ``agent_completed`` last."""
    import httpx

    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/chat", json={"user_id": user_id, "message": message}, timeout=REQUEST_TIMEOUT
        )
    except httpx.HTTPError:
        return _failed(started)
    latency = time.perf_counter() - started
    text = response.text
    leaked = text.count(canary) + sum(v.count(canary) for v in response.headers.values())
    if response.status_code != 200:
        return Turn(latency, "failed", {}, 0, 0, False, leaked)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return Turn(latency, "failed", {}, 0, 0, False, leaked)
    events = body.get("events") or []
    completed = bool(events) and events[-1].get("type") == "agent_completed"
    degraded = body.get("degraded") or {}
    return Turn(
        latency,
        _outcome(body.get("status"), body.get("answer")),
        dict(degraded),
        len(events),
        _expected(events[-1], len(events)) if events else 0,
        completed,
        leaked,
    )


async def ws_turn(socket: Any, user_id: str, message: str, canary: str) -> Turn:
    """Send one message on an open WebSocket; read events until ``agent_completed``."""
    started = time.perf_counter()
    leaked = 0
    events = 0
    try:
        await socket.send(json.dumps({"user_id": user_id, "message": message}))
        async with asyncio.timeout(REQUEST_TIMEOUT):
            while True:
                frame = await socket.recv()
                text = frame if isinstance(frame, str) else frame.decode()
                leaked += text.count(canary)
                event = json.loads(text)
                if event.get("type") == "error":
                    return _failed(started, leaked)
                events += 1
                if event.get("type") == "agent_completed":
                    break
    except (TimeoutError, OSError, ValueError):
        return _failed(started, leaked)
    except Exception as exc:  # websockets' ConnectionClosed and friends
        if type(exc).__module__.startswith("websockets"):
            return _failed(started, leaked)
        raise
    latency = time.perf_counter() - started
    status = event.get("status")
    answer = (event.get("data") or {}).get("output")
    if status in ("ok", "degraded") and not isinstance(answer, str):
        answer = "(streamed)"  # the final event may omit the output; the run did answer
    return Turn(
        latency,
        _outcome(status, answer),
        dict(event.get("degraded") or {}),
        events,
        _expected(event, events),
        True,
        leaked,
    )


# -- what a target must expose -----------------------------------------------------------

PREFLIGHT_TIMEOUT = 5.0

TARGET_CONTRACT = """\
A target must expose (the example backend does, in demo mode):
  GET  /health                 a health document: {"status": ..., "checks": {...}}
  GET  /demo/faults            {"dependencies": [names], "active": {...}} (demo mode only)
  POST /demo/faults/{name}     switch a fault on: {"kind": "error"|"latency"|...}
  DELETE /demo/faults          clear every fault
  POST /v1/chat                {"user_id", "message"} -> {"answer", "status", "events", "degraded"}
  WS   /v1/chat/ws             the same turn as JSON events, agent_completed last"""


def _unreachable(base_url: str, path: str, exc: Exception) -> TargetError:
    return TargetError(f"{base_url}{path} did not answer ({type(exc).__name__}); is it running?")


async def check_target(base_url: str, scenarios: list[Scenario], *, websocket: bool) -> None:
    """Fail fast, naming what is missing, when ``base_url`` cannot be drilled: each endpoint
    of :data:`TARGET_CONTRACT` that the chosen ``scenarios`` use is probed once, each probe
    bounded by :data:`PREFLIGHT_TIMEOUT`."""
    import httpx

    base = base_url.rstrip("/")
    async with httpx.AsyncClient(base_url=base, timeout=PREFLIGHT_TIMEOUT) as client:
        try:
            health = await client.get("/health")
        except httpx.HTTPError as exc:
            raise _unreachable(base, "/health", exc) from None
        if not _json_with(health, "status"):
            raise TargetError(
                f"GET {base}/health answered {health.status_code} without a health document"
            )
        try:
            listing = await client.get("/demo/faults")
        except httpx.HTTPError as exc:
            raise _unreachable(base, "/demo/faults", exc) from None
        if listing.status_code != 200 or not _json_with(listing, "dependencies"):
            raise TargetError(
                f"GET {base}/demo/faults answered {listing.status_code}: the fault switches are "
                "off; start the target in demo mode (NETRA_DEMO=1)"
            )
        known = listing.json().get("dependencies")
        needed = sorted({name for scenario in scenarios for name, _ in scenario.faults})
        missing = [name for name in needed if not isinstance(known, list) or name not in known]
        if missing:
            raise TargetError(
                f"the target has no fault switch for {', '.join(missing)} "
                "(skip those scenarios with --scenario)"
            )
        try:
            chat = await client.post(
                "/v1/chat", json={"user_id": "drill-preflight", "message": "hello"}
            )
        except httpx.HTTPError as exc:
            raise _unreachable(base, "/v1/chat", exc) from None
        if chat.status_code != 200 or not _json_with(chat, "events"):
            raise TargetError(
                f"POST {base}/v1/chat answered {chat.status_code} without a chat reply"
            )
    if websocket:
        await _check_websocket(base)


def _json_with(response: Any, key: str) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and key in body


async def _check_websocket(base: str) -> None:
    from websockets.asyncio.client import connect

    url = "ws" + base.removeprefix("http") + "/v1/chat/ws"
    try:
        async with asyncio.timeout(PREFLIGHT_TIMEOUT):
            socket = await connect(url, open_timeout=PREFLIGHT_TIMEOUT)
            await socket.close()
    except TimeoutError:
        raise TargetError(f"WebSocket {url} did not open within {PREFLIGHT_TIMEOUT:g} s") from None
    except Exception as exc:  # websockets' InvalidStatus (403, 404) and OSError
        status = getattr(getattr(exc, "response", None), "status_code", None)
        said = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
        raise TargetError(f"WebSocket {url} refused the connection ({said})") from None


# -- a scenario against a target -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrillOptions:
    users: int = 20
    ws_share: float = 0.25
    fault_seconds: float = 4.0
    max_recover_seconds: float = 30.0
    tail_seconds: float = 0.5


Progress = Callable[[str, str], None]
"""``progress(scenario_name, phase)``: called as the drill moves on."""


class _Phase:
    def __init__(self) -> None:
        self.name = "warmup"
        self.stop = asyncio.Event()


class ScenarioRun:
    """One scenario against ``base_url`` (``http://host:port``)."""

    def __init__(
        self,
        scenario: Scenario,
        base_url: str,
        options: DrillOptions,
        *,
        canary: str,
        epoch: float,
        progress: Progress | None = None,
    ) -> None:
        self.scenario = scenario
        self.base_url = base_url.rstrip("/")
        self.options = options
        self.canary = canary
        self.epoch = epoch
        self.progress = progress or (lambda _name, _phase: None)
        self.phase = _Phase()
        self.result = ScenarioResult(
            scenario.name,
            scenario.title,
            started=self.now(),
            expects_detection=scenario.detect_via != "none",
            resumable=scenario.runs,
        )

    def now(self) -> float:
        return time.perf_counter() - self.epoch

    # -- users ----------------------------------------------------------------------------
    def _record(self, started: float, turn: Turn, channel: str) -> None:
        self.result.samples.append(
            Sample(
                at=started,
                latency=turn.latency,
                outcome=turn.outcome,
                phase=self.phase.name,
                degraded=turn.degraded,
                events=turn.events,
                expected_events=turn.expected_events,
                completed=turn.completed,
                leaked=turn.leaked,
                channel=channel,
            )
        )

    async def _warm(self, send: Callable[[str], Any], messages: tuple[str, ...]) -> None:
        for message in messages:  # every user asks each question once before the fault
            await send(message)

    async def _http_user(self, index: int, ready: asyncio.Barrier) -> None:
        import httpx

        user_id = f"drill-user-{index}"
        messages = self.scenario.user_messages()
        churn = self.scenario.churn
        limits = httpx.Limits(max_keepalive_connections=0 if churn else 4)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits) as client:

            async def send(message: str) -> None:
                started = self.now()
                self._record(
                    started, await http_turn(client, user_id, message, self.canary), "http"
                )

            await self._warm(send, messages)
            await ready.wait()
            turn = index
            while not self.phase.stop.is_set():
                await send(messages[turn % len(messages)])
                turn += 1
                await asyncio.sleep(THINK_TIME)

    async def _ws_user(self, index: int, ready: asyncio.Barrier) -> None:
        from websockets.asyncio.client import connect

        user_id = f"drill-user-{index}"
        messages = self.scenario.user_messages()
        url = "ws" + self.base_url.removeprefix("http") + "/v1/chat/ws"
        socket: Any = None

        async def send(message: str) -> None:
            nonlocal socket
            started = self.now()
            if socket is None:
                try:
                    socket = await connect(url, open_timeout=10)
                except (OSError, TimeoutError):
                    self._record(started, Turn(0.0, "failed", {}, 0, 0, False, 0), "ws")
                    return
            turn = await ws_turn(socket, user_id, message, self.canary)
            self._record(started, turn, "ws")
            if self.scenario.churn or not turn.completed:
                await socket.close()
                socket = None

        try:
            await self._warm(send, messages)
            await ready.wait()
            turn = index
            while not self.phase.stop.is_set():
                await send(messages[turn % len(messages)])
                turn += 1
                await asyncio.sleep(THINK_TIME)
        finally:
            if socket is not None:
                await socket.close()

    # -- control --------------------------------------------------------------------------
    async def _health(self, client: httpx.AsyncClient) -> None:
        import httpx

        while not self.phase.stop.is_set():
            try:
                response = await client.get("/health", timeout=5.0)
                document = response.json()
                circuits = {
                    name: str(entries[0].get("circuitState", ""))
                    for name, entries in (document.get("checks") or {}).items()
                    if entries and entries[0].get("circuitState")
                }
                point = HealthPoint(self.now(), str(document.get("status")), circuits)
                self.result.health.append(point)
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            await asyncio.sleep(HEALTH_INTERVAL)

    async def _set_faults(self, client: httpx.AsyncClient) -> None:
        for dependency, fault in self.scenario.faults:
            body = dict(fault)
            if "message" in body:
                body["message"] = str(body["message"]).replace("{canary}", self.canary)
            response = await client.post(f"/demo/faults/{dependency}", json=body)
            if response.status_code == 404:
                raise TargetError(
                    "the target has no /demo/faults: run it in demo mode (NETRA_DEMO=1)"
                )
            response.raise_for_status()

    def _detected(self) -> float | None:
        fault_at, expects = self.result.fault_at, self.scenario.expects
        if fault_at is None or expects is None:
            return None
        if self.scenario.detect_via == "health":
            points = [p.at for p in self.result.health if p.at >= fault_at and p.status != "pass"]
            return min(points) - fault_at if points else None
        seen = [
            s.at + s.latency
            for s in self.result.samples
            if s.at >= fault_at and expects in s.degraded
        ]
        return min(seen) - fault_at if seen else None

    def _recovered(self) -> float | None:
        cleared, expects = self.result.cleared_at, self.scenario.expects
        if cleared is None or expects is None:
            return None
        if self.scenario.detect_via == "health":
            points = [p.at for p in self.result.health if p.at >= cleared and p.status == "pass"]
            return min(points) - cleared if points else None
        clean = [
            s.at + s.latency
            for s in self.result.samples
            if s.at >= cleared and expects not in s.degraded and s.outcome == "answered"
        ]
        return min(clean) - cleared if clean else None

    async def run(self) -> ScenarioResult:
        if self.scenario.runs:
            return await self._run_resumable()
        import httpx

        options = self.options
        ws_users = (
            options.users if self.scenario.ws_only else round(options.users * options.ws_share)
        )
        ready = asyncio.Barrier(options.users + 1)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as control:
            await control.delete("/demo/faults")
            self.progress(self.scenario.name, "warm-up")
            users = [
                asyncio.create_task(
                    self._ws_user(i, ready) if i < ws_users else self._http_user(i, ready)
                )
                for i in range(options.users)
            ]
            health = asyncio.create_task(self._health(control))
            try:
                await ready.wait()
                await self._set_faults(control)
                self.result.fault_at = self.now()
                self.phase.name = "fault"
                self.progress(self.scenario.name, "fault")
                await asyncio.sleep(options.fault_seconds)
                await control.delete("/demo/faults")
                self.result.cleared_at = self.now()
                self.phase.name = "recovery"
                self.progress(self.scenario.name, "recovery")
                await self._await_recovery()
            finally:
                self.phase.stop.set()
                await asyncio.gather(*users, health, return_exceptions=True)
                await control.delete("/demo/faults")
        self.result.detect_seconds = self._detected()
        self.result.recover_seconds = self._recovered()
        self.result.ended = self.now()
        for task in users:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.result.errors.append(f"user crashed: {type(task.exception()).__name__}")
        return self.result

    # -- resumable runs (replica_lost) -----------------------------------------------------
    async def _run_resumable(self) -> ScenarioResult:
        import httpx

        users = self.options.users
        # runs past their first event and not ended yet; the crash comes once a third of
        # the users' runs are in flight at once (runs that ended before it are not mid-run)
        flight = _InFlight(max(1, users // 3))
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as control:
            await control.delete("/demo/faults")
            self.progress(self.scenario.name, "runs starting")
            runs = [asyncio.create_task(self._resumable_run(i, flight)) for i in range(users)]
            all_ended: asyncio.Future[Any] = asyncio.gather(*runs, return_exceptions=True)
            enough: asyncio.Future[Any] = asyncio.ensure_future(flight.enough.wait())
            try:
                await asyncio.wait(
                    [enough, all_ended], timeout=RUN_BOUND, return_when=asyncio.FIRST_COMPLETED
                )
                if flight.enough.is_set():
                    self.result.mid_run = flight.now
                    try:
                        await self._set_faults(control)
                    except httpx.HTTPError as exc:  # its replica died before answering
                        self.result.errors.append(f"crash switch: {type(exc).__name__}")
                    self.result.fault_at = self.now()
                    self.phase.name = "fault"
                    self.progress(self.scenario.name, f"fault ({flight.now} runs in flight)")
                else:
                    self.result.errors.append(
                        f"never {flight.threshold} runs in flight at once: they ended too fast "
                        "for a crash mid-run (longer runs, or more users)"
                    )
            finally:
                enough.cancel()
                await all_ended
        self.result.ended = self.now()
        for task in runs:
            if not task.cancelled() and task.exception() is not None:
                self.result.errors.append(f"user crashed: {type(task.exception()).__name__}")
        return self.result

    async def _resumable_run(self, index: int, flight: _InFlight) -> None:
        """One run on ``WS /v1/runs/ws``: reconnect and resume by seq until its final event."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        url = "ws" + self.base_url.removeprefix("http") + "/v1/runs/ws"
        messages = self.scenario.user_messages()
        start = {"user_id": f"drill-user-{index}", "message": messages[index % len(messages)]}
        started = self.now()
        run_id: str | None = None
        seqs: list[int] = []
        final: dict[str, Any] | None = None
        leaked = 0
        try:
            async with asyncio.timeout(RUN_BOUND):
                while final is None:
                    frame = start if run_id is None else {"resume": run_id, "last_seq": seqs[-1]}
                    try:
                        async with connect(url, open_timeout=5) as socket:
                            await socket.send(json.dumps(frame))
                            async for raw in socket:
                                text = raw if isinstance(raw, str) else raw.decode()
                                leaked += text.count(self.canary)
                                event = json.loads(text)
                                if "seq" not in event:  # resume_failed / error: again
                                    break
                                run_id = str(event.get("run_id") or run_id)
                                seqs.append(int(event["seq"]))
                                if len(seqs) == 1:
                                    flight.started()
                                if event.get("type") == "agent_completed":
                                    final = event
                                    break
                    except (OSError, TimeoutError, ValueError, ConnectionClosed, InvalidStatus):
                        pass  # the replica went away: reconnect through the target
                    if final is None:
                        await asyncio.sleep(RECONNECT_PAUSE)
        except TimeoutError:
            pass  # lost: no final event within the bound
        finally:
            if seqs:
                flight.ended()
        self.result.duplicated += len(seqs) - len(set(seqs))
        self._record(started, _run_turn(self.now() - started, seqs, final, leaked), "ws")

    async def _await_recovery(self) -> None:
        options = self.options
        deadline = self.now() + options.max_recover_seconds
        if self.scenario.detect_via == "none":
            await asyncio.sleep(options.tail_seconds)
            return
        while self.now() < deadline:
            if self._recovered() is not None:
                await asyncio.sleep(options.tail_seconds)
                return
            await asyncio.sleep(0.05)


async def run_scenarios(
    scenarios: list[Scenario],
    base_url: str,
    options: DrillOptions,
    *,
    progress: Progress | None = None,
) -> tuple[list[ScenarioResult], str]:
    """Run ``scenarios`` in order; returns the results and the canary that must never leak."""
    canary = "sk-drill-" + secrets.token_hex(12)
    epoch = time.perf_counter()
    results = []
    for scenario in scenarios:
        run = ScenarioRun(
            scenario, base_url, options, canary=canary, epoch=epoch, progress=progress
        )
        results.append(await run.run())
    return results, canary


# -- the default target: the example backend, in-process -----------------------------------


def _import_example() -> Any:
    """``examples.agent_backend`` from the source checkout this package runs from."""
    root = Path(__file__).resolve().parents[2]
    if importlib.util.find_spec("examples") is None and (root / "examples").is_dir():
        # An editable install exposes netra_resilience only; this process is the drill's own.
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("examples.agent_backend")
    except ModuleNotFoundError as exc:
        package = (exc.name or "examples").split(".")[0]
        if package == "examples":
            raise TargetError(
                "the in-process drill needs the repository's examples/agent_backend "
                "(run from a source checkout), or drill a running backend with --target URL"
            ) from None
        raise TargetError(
            f"the in-process example backend {install_hint(package, 'demo')}"
            " (or drill a running backend with --target URL)"
        ) from exc


@asynccontextmanager
async def in_process_backend(*, llm_timeout: float = 0.3) -> AsyncIterator[str]:
    """Serve the example backend on a free loopback port; yields its base URL."""
    import uvicorn

    example = _import_example()
    with tempfile.TemporaryDirectory(prefix="netra-drill-") as folder:
        settings = example.Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'drill.db'}",
            redis_url="memory://",
            demo_mode=True,
            llm_timeout=llm_timeout,
            breaker_seconds=1.0,
            breaker_window=2.0,
            discovery_ttl=0.5,
            retry_delay=0.05,
        )
        app = example.create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the in-process backend stopped during startup")
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task
