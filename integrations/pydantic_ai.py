"""pydantic-ai adapter: a pydantic-ai ``Agent`` run as a resilient engine.

::

    llm = ResilientOpenAI(AsyncOpenAI(), resilience.llm(canned_reply=canned_reply("Busy.")))
    run = PydanticAIEngine(agent, llm)
    engine = resilience.engine(run, hooks=[Hook("analytics", send)], tools=run.tools(
        get_weather={"effect": "read", "rate": 1}))
    result = await engine.run("What's the weather in Paris?", websocket.send_json)

* **Model calls**: :func:`resilient_model` is an ``OpenAIChatModel`` on the
  :class:`ResilientOpenAI` facade, so every request (streamed or not) goes through the LLM
  pipeline: what ``FallbackModel`` lacks — a breaker, the last good answer served stale, a
  fallback chain chosen by error class (``openai_alternate`` steps, a canned reply) — and
  one retry owner (the SDK client's retries are off).
* **Tools**: a per-run capability wraps each tool execution (``wrap_tool_execute``) in the
  engine's tool pipeline (``run.tools(...)``: one engine ``Tool`` per agent tool, options
  per name). A failed, rate-limited or open-breaker tool answers the model with the
  :class:`~netra_resilience.engine.ToolFailure` as JSON; ``ModelRetry`` and the approval /
  deferral signals pass through to pydantic-ai untouched.
* **Events**: each model request is an ``agent_thinking`` event; tools emit
  ``tool_executing`` / ``tool_completed``; with ``stream=True`` the run streams and each
  text delta is an ``agent_thinking`` event with ``delta``. ``agent_started`` and the final
  ``agent_completed`` come from the engine stack, with the degradation flags.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any

from netra_resilience.integrations import missing_extra

try:
    from pydantic_ai import Agent, RunContext
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolRetryError
    from pydantic_ai.messages import (
        AgentStreamEvent,
        PartDeltaEvent,
        PartStartEvent,
        TextPart,
        TextPartDelta,
        ToolCallPart,
    )
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.tools import ToolDefinition
    from pydantic_ai.toolsets import FunctionToolset

    from netra_resilience.integrations.openai import ResilientOpenAI
except ImportError as error:
    if error.name is None or error.name.split(".")[0] not in ("pydantic_ai", "openai", "httpx2"):
        raise
    raise missing_extra("pydantic-ai", error) from error

from netra_resilience.engine import EventType, RunEvents, RunRequest, RunTools, Tool, ToolFailure
from netra_resilience.exceptions import InvalidOptionsError

__all__ = ["DEFAULT_MODEL", "PydanticAIEngine", "resilient_model"]

DEFAULT_MODEL = "gpt-4o-mini"

# pydantic-ai's control flow, raised by tools on purpose: not failures of the tool.
_SIGNALS = (ModelRetry, ToolRetryError, ApprovalRequired, CallDeferred)


def resilient_model(llm: ResilientOpenAI, model_name: str = DEFAULT_MODEL) -> OpenAIChatModel:
    """A pydantic-ai model whose every request goes through ``llm``'s pipeline."""
    if not isinstance(llm, ResilientOpenAI):
        raise InvalidOptionsError("resilient_model", "llm", f"must be a ResilientOpenAI: {llm!r}")
    provider = OpenAIProvider(openai_client=llm.as_async_openai())
    return OpenAIChatModel(model_name, provider=provider)


class _Signal:
    """A control-flow exception carried through the tool pipeline as a value (so it is
    neither retried nor counted against the tool's breaker), re-raised outside it."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


async def _execute(
    handler: Callable[[dict[str, Any]], Awaitable[Any]], args: dict[str, Any]
) -> Any:
    try:
        return await handler(args)
    except _SIGNALS as signal:
        return _Signal(signal)


class _RunCapability(AbstractCapability[Any]):
    """One run's bridge: model requests and tool executions as engine events and pipelines."""

    def __init__(self, events: RunEvents, tools: RunTools) -> None:
        self._events = events
        self._tools = tools

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        await self._events(EventType.AGENT_THINKING, text="calling the model")
        return request_context

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: dict[str, Any],
        handler: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> Any:
        name = tool_def.name
        if name not in self._tools:  # not given to the engine: run as is, still announced
            await self._events(EventType.TOOL_EXECUTING, tool=name, call_id=call.tool_call_id)
            try:
                result = await handler(args)
            except _SIGNALS:
                raise
            except Exception:
                await self._events(
                    EventType.TOOL_COMPLETED, tool=name, call_id=call.tool_call_id, ok=False
                )
                raise
            await self._events(
                EventType.TOOL_COMPLETED, tool=name, call_id=call.tool_call_id, ok=True
            )
            return result
        outcome = await self._tools.call(name, handler, args, call_id=call.tool_call_id)
        if isinstance(outcome, ToolFailure):
            return json.dumps(outcome.as_dict())  # what the model reads back: a typed refusal
        if isinstance(outcome.value, _Signal):
            raise outcome.value.error
        return outcome.value


def _text_of(event: AgentStreamEvent) -> str:
    """The answer text an event adds (a text part starts with its first piece)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


def _function_tool_names(agent: Agent[Any, Any]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for toolset in agent.toolsets:
        if isinstance(toolset, FunctionToolset):
            names.update(dict.fromkeys(toolset.tools))
    return tuple(names)


class PydanticAIEngine:
    """An engine (``await engine(request, events)``) running ``agent`` on ``llm``.

    ``llm`` makes every model request (see :func:`resilient_model`); ``stream=True`` runs
    with an event stream and sends text deltas as events. The answer is the run's
    ``output``.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        llm: ResilientOpenAI,
        *,
        model_name: str = DEFAULT_MODEL,
        stream: bool = False,
    ) -> None:
        if not isinstance(agent, Agent):
            raise InvalidOptionsError("PydanticAIEngine", "agent", f"must be an Agent: {agent!r}")
        self.agent = agent
        self.model = resilient_model(llm, model_name)
        self.stream = stream
        self.tool_names = _function_tool_names(agent)

    def tools(self, **options: Mapping[str, Any]) -> list[Tool]:
        """One engine :class:`Tool` per agent tool, for ``resilience.engine(tools=...)``:
        ``run.tools(get_weather={"effect": "read", "rate": 1, "timeout": 5})``. Declare each
        tool's ``effect``: one left ``unsafe`` (the default) is retried only when its failure
        provably happened before the request left."""
        unknown = sorted(set(options) - set(self.tool_names))
        if unknown:
            raise InvalidOptionsError(
                "PydanticAIEngine.tools",
                unknown[0],
                f"is not a tool of the agent (tools: {', '.join(self.tool_names) or 'none'})",
            )
        return [Tool(name, _execute, **dict(options.get(name, {}))) for name in self.tool_names]

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        capability = _RunCapability(events, request.tools)

        async def on_events(_ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
            async for event in stream:
                text = _text_of(event)
                if text:
                    await events(EventType.AGENT_THINKING, text=text, delta=True)

        result = await self.agent.run(
            request.input,
            model=self.model,
            capabilities=[capability],
            event_stream_handler=on_events if self.stream else None,
        )
        return result.output
