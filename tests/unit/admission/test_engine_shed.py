"""A shed agent run still ends with its agent_completed event, flagged shed, no detail leaked."""

from __future__ import annotations

import asyncio

from netra_resilience import PipelineBuilder
from netra_resilience.admission import AIMDLimit
from netra_resilience.engine import ResilientEngine, RunEvents, RunRequest, RunStatus
from netra_resilience.testing import FakeClock
from tests.unit.engine.helpers import Recorder


async def test_a_shed_run_gets_its_final_agent_completed(clock: FakeClock) -> None:
    fixed = AIMDLimit(initial_limit=1, min_limit=1, max_limit=1)
    llm = PipelineBuilder("llm", clock=clock).add_admission(algorithm=fixed, max_queue=0).build()
    gate = asyncio.Event()

    async def complete(prompt: str) -> str:
        await gate.wait()
        return f"answer to {prompt}"

    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("asking the model")
        return await llm.execute(complete, request.input)

    engine = ResilientEngine(agent, clock=clock)
    busy = asyncio.ensure_future(engine.run(RunRequest("first"), Recorder()))
    await clock.settle()
    sink = Recorder()
    result = await engine.run(RunRequest("second"), sink)
    assert result.status is not RunStatus.OK
    assert sink.types()[-1] == "agent_completed"
    final = sink.final()
    assert final["degradation"] == {"llm": "shed"}
    assert final["data"]["error"]["type"] == "AdmissionRejectedError"
    assert "concurrency limit" not in str(sink.events)  # the reason stays server-side
    gate.set()
    assert (await busy).output == "answer to first"
