"""The README's integration example: one runtime, a resilient openai client, a wrapped agent.

Run: ``OPENAI_API_KEY=... uvicorn examples.readme_app:app`` (tests build it with a fake client
and a fake clock).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from openai import AsyncOpenAI

from netra_resilience import Hook, Resilience
from netra_resilience.integrations.fastapi import CurrentDegradation, install
from netra_resilience.integrations.openai import ResilientOpenAI, canned_reply


def create_app(client: AsyncOpenAI, send_analytics: Any, resilience: Resilience) -> FastAPI:
    # Timeouts, retries honouring Retry-After, a breaker, last good answers served stale.
    llm = ResilientOpenAI(client, resilience.llm(canned_reply=canned_reply("Busy, retry.")))

    @resilience.engine(hooks=[Hook("analytics", send_analytics, timeout=0.5)])
    async def agent(request: Any, events: Any) -> str:
        await events.thinking("asking the model")
        messages = [{"role": "user", "content": request.input}]
        reply = await llm.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return str(reply.choices[0].message.content)

    app = FastAPI()
    install(app, resilience)  # Netra-Degraded header, 503 on critical rejections, /health

    @app.post("/chat")
    async def chat(body: dict[str, str], degradation: CurrentDegradation) -> dict[str, Any]:
        result = await agent.run(body["message"], user_id=body["user_id"])
        return {"answer": result.output, "status": result.status, "degraded": degradation.as_dict()}

    return app


async def _no_analytics(*_: Any) -> None:
    return None


def __getattr__(name: str) -> FastAPI:  # ``uvicorn examples.readme_app:app`` with a real key
    if name == "app":
        return create_app(AsyncOpenAI(), _no_analytics, Resilience())
    raise AttributeError(name)
