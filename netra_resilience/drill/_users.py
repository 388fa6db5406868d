"""Simulated users: one chat turn over HTTP or WebSocket, measured and checked for leaks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from netra_resilience.drill._metrics import Outcome

REQUEST_TIMEOUT = 30.0


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


async def http_turn(client: httpx.AsyncClient, user_id: str, message: str, canary: str) -> Turn:
    """``POST /v1/chat``; the reply must carry its events, ``agent_completed`` last."""
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
    import asyncio

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
