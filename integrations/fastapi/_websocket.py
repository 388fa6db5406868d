"""A WebSocket's frames, taken as a client may really send them, and its hang-ups as normal.

``serve_frames(websocket, handle)`` reads an accepted socket until the client leaves:

* every text frame of at most ``max_frame_bytes`` (UTF-8) goes to ``await handle(text)``, one at
  a time and in order, in a worker task;
* a binary frame or a larger text frame gets ``{"type": "error", "reason": ..., "error": ...}``
  (in its place in the order) and the socket stays open;
* frames that arrive while a handler runs wait, at most ``max_pending`` of them; past that the
  socket is not read (TCP back-pressure) until the handler catches up;
* when the client hangs up, a running handler is cancelled (an engine run then ends with its
  final ``agent_completed`` for hooks and logs) and ``serve_frames`` returns. A send to a
  client already gone (Starlette's ``WebSocketDisconnect``, or the ``RuntimeError`` it raises
  for a closed socket, ``WebSocketDisconnected`` since 1.x) ends it the same way: a hang-up is
  normal, never logged as an error.

The server bounds a frame first (uvicorn ``ws_max_size``, 16 MiB by default: a larger frame
closes the connection with 1009); keep ``max_frame_bytes`` below it so a big frame is answered
instead of dropping the socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from netra_resilience.validation import integer

__all__ = ["MAX_FRAME_BYTES", "FrameHandler", "client_gone", "serve_frames"]

MAX_FRAME_BYTES = 65_536
"""Default bound of one text frame, in UTF-8 bytes (64 KiB)."""

FrameHandler = Callable[[str], Awaitable[None]]
"""``async def handle(text)``: one text frame within the bound."""

_OWNER = "serve_frames"


def client_gone(websocket: WebSocket, exc: BaseException) -> bool:
    """Whether ``exc`` only says the client has left (not a bug to report)."""
    if isinstance(exc, WebSocketDisconnect):
        return True
    # Starlette raises a RuntimeError (WebSocketDisconnected, a subclass, since 1.x) for a
    # send or receive on a socket whose close was sent or received.
    closed = WebSocketState.DISCONNECTED
    return isinstance(exc, RuntimeError) and (
        websocket.client_state is closed or websocket.application_state is closed
    )


def _frame_error(reason: str, error: str) -> dict[str, str]:
    return {"type": "error", "reason": reason, "error": error}


def _utf8_size_over(text: str, limit: int) -> bool:
    if len(text) > limit:
        return True
    if 4 * len(text) <= limit:  # no encoding needed: 4 bytes per character at most
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _read(message: dict[str, Any] | Any, max_frame_bytes: int) -> str | dict[str, str]:
    """A text frame within the bound, or the error event that answers it."""
    text = message.get("text")
    if text is None:
        return _frame_error("binary_frame", "expected a text frame holding JSON")
    if _utf8_size_over(text, max_frame_bytes):
        return _frame_error("frame_too_large", f"a frame may hold at most {max_frame_bytes} bytes")
    return str(text)


async def serve_frames(
    websocket: WebSocket,
    handle: FrameHandler,
    *,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    max_pending: int = 8,
) -> None:
    """Serve an accepted ``websocket`` until the client leaves; see the module doc."""
    integer(_OWNER, "max_frame_bytes", max_frame_bytes, minimum=1, maximum=1 << 30)
    integer(_OWNER, "max_pending", max_pending, minimum=1, maximum=10_000)
    pending: deque[str | dict[str, str]] = deque()
    arrived = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def work() -> None:
        while True:
            while not pending:
                arrived.clear()
                await arrived.wait()
            item = pending.popleft()
            room.set()
            if isinstance(item, str):
                await handle(item)
            else:
                await websocket.send_json(item)

    worker = asyncio.get_running_loop().create_task(work())
    try:
        while True:
            if len(pending) >= max_pending:
                room.clear()
                if not await _before_worker_ends(room.wait(), worker):
                    break
                continue
            message = await _before_worker_ends(websocket.receive(), worker)
            if message is None or message["type"] == "websocket.disconnect":
                break
            pending.append(_read(message, max_frame_bytes))
            arrived.set()
    except asyncio.CancelledError:
        worker.cancel()  # we are being cancelled (server shutdown): no waiting on the way out
        raise
    except Exception as exc:
        if not client_gone(websocket, exc):
            worker.cancel()
            raise
    worker.cancel()  # the client left: a running handler is cancelled, its cleanup awaited
    await _settled(worker)
    outcome = None if worker.cancelled() else worker.exception()
    if isinstance(outcome, Exception) and not client_gone(websocket, outcome):
        raise outcome


async def _settled(task: asyncio.Task[Any]) -> None:
    # asyncio.wait, not gather: if we are cancelled meanwhile, it gives way at once (gather
    # waits for its children first, and a cancel scope, e.g. anyio's, cancels us again).
    await asyncio.wait({task})


async def _before_worker_ends(awaitable: Awaitable[Any], worker: asyncio.Task[None]) -> Any:
    """``await awaitable``, or ``None`` once the worker has ended (its outcome is read later)."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({waiter, worker}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        waiter.cancel()
        raise
    if not waiter.done():
        waiter.cancel()
        await _settled(waiter)
        return None
    return waiter.result()
