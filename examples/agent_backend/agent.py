"""The agent itself: what a user of netra-resilience writes (no resilience code in here).

It reads the conversation, calls the external tool when asked to, asks the LLM and stores
the turn. Every dependency call already carries its resilience (see ``wiring.py``); failures
come back as values (``ToolFailure``), stale answers or degradation flags, never as crashes.
"""

from __future__ import annotations

import re

from examples.agent_backend.wiring import LlmService
from netra_resilience import DegradationReason, RunRequest, current_degradation
from netra_resilience.engine import RunEvents, ToolOk
from netra_resilience.sessions import SessionStore

TOOL_WORD = re.compile(r"\btool\b", re.IGNORECASE)
HISTORY_TURNS = 20

Turn = dict[str, str]
"""``{"user": ..., "assistant": ...}``: one exchange of the conversation."""


class Conversations:
    """The user's conversation history in the session store (Redis, else the database)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def _unavailable(self) -> None:
        degradation = current_degradation()
        if degradation is not None:
            degradation.mark("database", DegradationReason.UNAVAILABLE)

    async def history(self, user_id: str) -> list[Turn]:
        try:
            stored = await self.store.get(f"conversation:{user_id}")
        except Exception:  # the store marks what it fell back to; here both were down
            self._unavailable()
            return []
        if not isinstance(stored, list):
            return []
        return [turn for turn in stored if isinstance(turn, dict)]

    async def append(self, user_id: str, turns: list[Turn], message: str, answer: str) -> None:
        turns = [*turns, {"user": message, "assistant": answer}][-HISTORY_TURNS:]
        try:
            await self.store.put(f"conversation:{user_id}", turns)
        except Exception:
            self._unavailable()


class Agent:
    """``await agent(request, events)``: one chat turn."""

    def __init__(self, llm: LlmService, conversations: Conversations) -> None:
        self.llm = llm
        self.conversations = conversations

    async def __call__(self, request: RunRequest, events: RunEvents) -> str:
        user_id = request.user_id or "anonymous"
        message = str(request.input)
        turns = await self.conversations.history(user_id)
        await events.thinking("reading the conversation", turns=len(turns))
        tool_result: str | None = None
        if TOOL_WORD.search(message):
            result = await request.tools.call("tool", message)
            if isinstance(result, ToolOk):
                value = result.value
                tool_result = str(value.get("result", value) if isinstance(value, dict) else value)
        await events.thinking("asking the model")
        if request.metadata.get("stream"):

            async def on_delta(text: str) -> None:
                await events.thinking(text, delta=True)

            answer = await self.llm.stream_answer(message, tool_result, on_delta)
        else:
            answer = await self.llm.answer(message, tool_result)
        await self.conversations.append(user_id, turns, message, answer)
        return answer
