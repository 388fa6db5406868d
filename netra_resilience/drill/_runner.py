"""Runs scenarios against a target URL: warm-up, fault, recovery; users talk all along."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from netra_resilience.drill._metrics import HealthPoint, Sample, ScenarioResult
from netra_resilience.drill._scenarios import Scenario
from netra_resilience.drill._users import Turn, http_turn, ws_turn

THINK_TIME = 0.02
HEALTH_INTERVAL = 0.2


class TargetError(RuntimeError):
    """The target cannot be drilled (unreachable, or without demo mode)."""


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
