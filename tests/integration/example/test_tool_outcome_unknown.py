"""The example backend's tool upstream commits and then stalls: the WebSocket client sees
the outcome_unknown event and the degradation flag, and the agent still answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from examples.agent_backend import create_app
from netra_resilience import Resilience
from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import settings_for

TOOL_TIMEOUT = 3.0  # the example tool's attempt timeout (wiring.external_tool)


def receive_until(ws: Any, event_type: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != event_type:
        events.append(ws.receive_json())
    return events


def test_a_committed_then_stalled_tool_call_reaches_the_websocket_as_outcome_unknown(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    app = create_app(settings_for(tmp_path), resilience=Resilience(clock=clock))
    with TestClient(app) as client:
        fault = client.post("/demo/faults/tool_response", json={"kind": "latency", "seconds": 30})
        assert fault.status_code == 200
        with client.websocket_connect("/v1/chat/ws") as ws:
            ws.send_json({"user_id": "u1", "message": "use the tool for Paris"})
            events = receive_until(ws, "tool_executing")
            assert events[-1]["data"]["effect"] == "idempotent"
            portal = client.portal
            assert portal is not None
            portal.call(clock.advance, TOOL_TIMEOUT)  # attempt 1: done upstream, no answer
            portal.call(clock.advance, TOOL_TIMEOUT)  # attempt 2 (same key): no answer either
            events += receive_until(ws, "agent_completed")

    completed = next(e for e in events if e["type"] == "tool_completed")
    assert completed["data"]["ok"] is False
    assert completed["data"]["error"] == "outcome_unknown"
    assert completed["data"]["outcome_unknown"] is True
    assert completed["degraded"]["tool"] == "outcome_unknown"
    notices = [e["data"] for e in events if e["type"] == "agent_degraded"]
    assert {"dependency": "tool", "reason": "outcome_unknown"} in notices
    final = events[-1]
    assert final["status"] == "degraded" and final["degraded"]["tool"] == "outcome_unknown"
    assert final["data"]["output"]  # the agent still answered (without the tool's result)
