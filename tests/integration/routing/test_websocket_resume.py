"""WebSocket resume over a real uvicorn server on loopback with the ``websockets`` client.

The run is still producing when the connection drops (first server-side, then client-side);
the client reconnects with its run id and last seq and gets every remaining event exactly
once, in order, ending with ``agent_completed``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from netra_resilience.engine import InMemoryEventLog
from tests.servers import free_port

TOTAL = 20


def ev(seq: int) -> dict[str, Any]:
    kind = "agent_started" if seq == 1 else "agent_completed" if seq == TOTAL else "agent_thinking"
    return {"type": kind, "run_id": "run-1", "seq": seq, "data": {"n": seq}}


async def test_websocket_client_resumes_after_server_and_client_drops() -> None:
    buffer = InMemoryEventLog()
    connections = 0
    second_half = asyncio.Event()

    async def stream(websocket: WebSocket) -> None:
        nonlocal connections
        connections += 1
        await websocket.accept()
        run_id = websocket.query_params["run_id"]
        after = int(websocket.query_params.get("after", "0"))
        sent = 0
        async for event in buffer.follow(run_id, after):
            await websocket.send_text(json.dumps(event))
            sent += 1
            if connections == 1 and sent == 5:  # server-side drop mid-run
                await websocket.close(code=1012)
                return
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/events", stream)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())

    async def produce() -> None:
        for seq in range(1, 11):
            buffer.put(ev(seq))
            await asyncio.sleep(0)
        await second_half.wait()  # the run is still going while clients drop
        for seq in range(11, TOTAL + 1):
            buffer.put(ev(seq))
            await asyncio.sleep(0)

    producer = asyncio.create_task(produce())
    try:
        for _ in range(500):  # bounded wait for the real server to listen
            if server.started:
                break
            await asyncio.sleep(0.01)  # real-sleep-ok: polling a real server until it listens
        received: list[dict[str, Any]] = []
        last = 0
        url = f"ws://127.0.0.1:{port}/events?run_id=run-1&after="
        # 1: the server drops us after 5 events
        async with connect(url + str(last)) as ws:
            try:
                async for message in ws:
                    received.append(json.loads(message))  # noqa: PERF401 - keep partials
            except ConnectionClosed:
                pass
        last = received[-1]["seq"]
        assert last == 5
        # 2: we drop the connection ourselves after 3 more events
        async with connect(url + str(last)) as ws:
            for _ in range(3):
                received.append(json.loads(await ws.recv()))  # noqa: PERF401
        last = received[-1]["seq"]
        second_half.set()
        # 3: reconnect and read to the end
        async with connect(url + str(last)) as ws:
            async for message in ws:
                event = json.loads(message)
                received.append(event)
                if event["type"] == "agent_completed":
                    break
        assert [e["seq"] for e in received] == list(range(1, TOTAL + 1))
        assert received[-1]["type"] == "agent_completed"
        assert connections == 3
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        producer.cancel()
