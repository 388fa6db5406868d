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
from netra_resilience.sessions import (
    InvalidSessionKeyError,
    SessionStore,
    SessionStoreUnavailableError,
)

TOOL_WORD = re.compile(r"\btool\b", re.IGNORECASE)
HISTORY_TURNS = 20
NOT_SAVED = "\n\n(This exchange could not be saved, so it will not be part of the conversation.)"

Turn = dict[str, str]
"""``{"user": ..., "assistant": ...}``: one exchange of the conversation."""


class Conversations:
    """The user's conversation in the session store (Redis, else the database).

    Each turn is *appended* (never a read-modify-write of the whole history), so a turn
    written while Redis is down can never replace the turns only Redis holds: the store
    merges both when Redis is back. The store flags what degraded (``sessions=partial``: the
    history read may be missing turns; ``sessions=not_stored``: the turn was lost).
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def history(self, user_id: str) -> list[Turn]:
        try:
            stored = await self.store.entries(f"conversation:{user_id}", limit=HISTORY_TURNS)
        except (SessionStoreUnavailableError, InvalidSessionKeyError):
            return []  # the store marked it (both backends down); answer without history
        return [turn for turn in stored if isinstance(turn, dict)]

    async def append(self, user_id: str, message: str, answer: str) -> bool:
        """Store the turn; ``False`` (flagged ``sessions=not_stored``) if it was not."""
        try:
            await self.store.append(
                f"conversation:{user_id}", {"user": message, "assistant": answer}
            )
        except SessionStoreUnavailableError:
            return False  # the store flagged it
        except InvalidSessionKeyError:  # the routes validate user ids; belt and braces
            degradation = current_degradation()
            if degradation is not None:
                degradation.mark(self.store.name, DegradationReason.NOT_STORED)
            return False
        return True


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
        if not await self.conversations.append(user_id, message, answer):
            return answer + NOT_SAVED  # never a silent loss: the user is told
        return answer
