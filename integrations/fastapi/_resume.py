"""Resume a run's events over SSE or a WebSocket, each in one line.

    @app.get("/runs/{run_id}/events")
    async def events(run_id: str, request: Request) -> Response:
        return run_event_stream(request, log, run_id)        # SSE, id: = seq, Last-Event-ID

    await send_run_events(websocket, log, run_id, last_seq)   # after a {"resume": ...} message

Both send every event after the client's last ``seq`` exactly once, in order, then the live
ones, and stop after ``agent_completed``. A run the log cannot resume is told, not hung on:
SSE answers 404 (unknown or expired), 410 (events trimmed), 503 with ``Retry-After`` (the
shared log is down), 204 when the client already has the final event (so a browser's
``EventSource`` stops reconnecting); a WebSocket gets ``{"type": "resume_failed", "reason"}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from netra_resilience.engine import (
    LOGGED_SEQ,
    Event,
    EventLog,
    ReplayUnavailableError,
    ended_by_sweep,
)
from netra_resilience.integrations import missing_extra

try:
    from sse_starlette import EventSourceResponse, ServerSentEvent
except ImportError as error:  # part of the fastapi extra
    raise missing_extra("fastapi", error) from error

__all__ = ["last_event_id", "run_event_stream", "send_run_events"]

FINAL_EVENT = "agent_completed"
_END_ID = ".end"
_STATUS = {"unknown": 404, "trimmed": 410, "unavailable": 503}


def _raw_last_event_id(request: Request) -> str | None:
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id")


def last_event_id(request: Request) -> int:
    """The client's last seq: the ``Last-Event-ID`` header (a browser's reconnect) or the
    ``last_event_id`` query parameter (a first connection resuming); 0 when absent/invalid."""
    raw = _raw_last_event_id(request)
    if raw and raw.endswith(_END_ID):
        raw = raw.removesuffix(_END_ID)
    try:
        seq = int(raw) if raw else 0
    except ValueError:
        return 0
    return max(seq, 0)


def _sse(event: Event) -> ServerSentEvent:
    end = _END_ID if LOGGED_SEQ in event else ""  # an end delivered after the client's seq
    return ServerSentEvent(
        data=json.dumps(dict(event), separators=(",", ":")),
        event=str(event.get("type", "message")),
        id=f"{event['seq']}{end}",
    )


async def _stream(
    log: EventLog, run_id: str, last_seq: int, first: list[Event]
) -> AsyncIterator[ServerSentEvent]:
    cursor = last_seq
    for event in first:
        cursor = int(event["seq"])
        yield _sse(event)
        if event.get("type") == FINAL_EVENT:
            return
    try:
        async for event in log.follow(run_id, cursor):
            yield _sse(event)
    except ReplayUnavailableError as exc:  # mid-stream: the client reconnects with its id
        yield ServerSentEvent(data=json.dumps({"reason": exc.reason}), event="resume_failed")


async def _already_final(log: EventLog, run_id: str, last_seq: int) -> bool:
    """Whether a client at ``last_seq``, with nothing after it in the log, has the run's end."""
    if last_seq < 1:
        return False
    if await log.last_seq(run_id) != last_seq:
        return False  # past the log's top: it holds events only a dead replica kept
    tail = await log.read(run_id, last_seq - 1)
    # A sweep's end at the client's own seq may sit where the client holds another event
    # (one the dead replica kept only locally): it gets the end after its seq instead (id
    # "<seq>.end", and a reconnect with that id gets the 204).
    return bool(tail) and tail[-1].get("type") == FINAL_EVENT and not ended_by_sweep(tail[-1])


def _refusal(exc: ReplayUnavailableError) -> Response:
    status = _STATUS.get(exc.reason, 404)
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": "resume_failed", "reason": exc.reason}, status, headers)


class _RunEventStream(Response):
    """Decides the status (events, 204, 404/410/503) when sent, then streams."""

    def __init__(
        self, log: EventLog, run_id: str, last_seq: int, ping: float, *, ended: bool
    ) -> None:
        super().__init__()
        self._log, self._run_id, self._last_seq, self._ping = log, run_id, last_seq, ping
        self._ended = ended

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        log, run_id, last_seq = self._log, self._run_id, self._last_seq
        response: Response
        if self._ended:  # the client's last event was the run's end (id "<seq>.end")
            await Response(status_code=204)(scope, receive, send)
            return
        try:
            first = await log.read(run_id, last_seq)
            if not first and await _already_final(log, run_id, last_seq):
                response = Response(status_code=204)
            else:
                response = EventSourceResponse(
                    _stream(log, run_id, last_seq, first),
                    ping=self._ping,
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                )
        except ReplayUnavailableError as exc:
            response = _refusal(exc)
        await response(scope, receive, send)


def run_event_stream(
    request: Request, log: EventLog, run_id: str, *, ping: float = 15.0
) -> Response:
    """An SSE response with ``run_id``'s events after the client's :func:`last_event_id`."""
    raw = _raw_last_event_id(request) or ""
    ended = raw.endswith(_END_ID)
    return _RunEventStream(log, run_id, last_event_id(request), ping, ended=ended)


async def send_run_events(
    websocket: WebSocket,
    log: EventLog,
    run_id: str,
    last_seq: int = 0,
    *,
    transform: Callable[[Event], Mapping[str, Any]] | None = None,
) -> int:
    """Send ``run_id``'s events after ``last_seq`` (then live ones) as JSON frames until the
    final one; returns the last seq sent. ``transform(event) -> dict`` shapes each frame.

    A disconnect raises as usual (the run goes on; the client resumes with what it got)."""
    cursor = last_seq
    try:
        async for event in log.follow(run_id, last_seq):
            frame: Mapping[str, Any] = transform(event) if transform is not None else event
            await websocket.send_json(dict(frame))
            cursor = int(event["seq"])
    except ReplayUnavailableError as exc:
        await websocket.send_json(
            {"type": "resume_failed", "run_id": run_id, "last_seq": cursor, "reason": exc.reason}
        )
    return cursor
