"""The README's integration example: middleware + registry + wrapped engine + resilient openai.

Run: ``OPENAI_API_KEY=... uvicorn examples.readme_app:app`` (tests build it with a fake client).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from openai import AsyncOpenAI

from netra_resilience import Dependency, Hook, RunRequest, standard_llm_pipeline, wrap_engine
from netra_resilience.clock import Clock
from netra_resilience.engine import RunEvents
from netra_resilience.health import ServiceRegistry
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.integrations.fastapi import CurrentDegradation, install
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply


def create_app(client: AsyncOpenAI, send_analytics: Any, clock: Clock | None = None) -> FastAPI:
    llm_pipeline = standard_llm_pipeline(
        "llm", clock=clock, cache=AiocacheBackend(), canned_reply=canned_reply("Busy, retry.")
    )
    llm = ResilientOpenAI(client, llm_pipeline)  # SDK retries off: one owner
    registry = ServiceRegistry([Dependency("llm", "important", pipeline=llm_pipeline)])

    @wrap_engine(hooks=[Hook("analytics", send_analytics, timeout=0.5)], clock=clock)
    async def agent(request: RunRequest, events: RunEvents) -> str:
        await events.thinking("asking the model")
        messages = [{"role": "user", "content": request.input}]
        reply = await llm.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return str(reply.choices[0].message.content)

    app = FastAPI()
    install(app, registry)  # Netra-Degraded header, 503 for critical rejections, /health*

    @app.post("/chat")
    async def chat(body: dict[str, str], degradation: CurrentDegradation) -> dict[str, Any]:
        result = await agent.run(RunRequest(body["message"], user_id=body["user_id"]))
        return {"answer": result.output, "status": result.status, "degraded": degradation.as_dict()}

    return app


async def _no_analytics(*_: Any) -> None:
    return None


def __getattr__(name: str) -> FastAPI:  # ``uvicorn examples.readme_app:app`` with a real key
    if name == "app":
        return create_app(AsyncOpenAI(), _no_analytics)
    raise AttributeError(name)
