"""OpenAI Agents SDK adapter: an ``Agent`` run as a resilient engine.

::

    llm = ResilientOpenAI(AsyncOpenAI(), resilience.llm(canned_reply=canned_reply("Busy.")))
    run = AgentsEngine(agent, llm)
    engine = resilience.engine(run, hooks=[Hook("analytics", send)], tools=run.tools(
        get_weather={"rate": 1, "burst": 1}))
    result = await engine.run("What's the weather in Paris?", websocket.send_json)

* **Model calls**: every agent of the run gets its model from :class:`ResilientModelProvider`,
  an ``OpenAIChatCompletionsModel`` whose client is the :class:`ResilientOpenAI` facade, so each
  call (streamed or not) goes through the LLM pipeline: timeouts, retry honouring
  ``Retry-After``, breaker, last good answer served stale, fallback chain, streaming rules.
  The SDK's own retries stay off (``max_retries=0``; its opt-in ``ModelSettings.retry`` is
  refused): one retry owner.
* **Function tools** are called through the engine's tool pipelines (``run.tools(...)`` makes
  one engine :class:`~netra_resilience.engine.Tool` per function tool, options per name). A
  tool that fails, is rate limited or whose breaker is open answers the model with the
  :class:`~netra_resilience.engine.ToolFailure` as JSON, which the agent reasons about; the
  run goes on.
* **Events**: the SDK's run hooks become ``agent_thinking`` (each model call, each handoff)
  and ``tool_executing``/``tool_completed``; with ``stream=True`` the run uses
  ``Runner.run_streamed`` and each text delta is an ``agent_thinking`` event with
  ``delta``. ``agent_started`` and the final ``agent_completed`` come from the engine stack,
  so the client always gets the final event; every event carries the degradation flags.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from netra_resilience.integrations import missing_extra

try:
    from agents import (
        Agent,
        FunctionTool,
        Model,
        ModelProvider,
        OpenAIChatCompletionsModel,
        RunConfig,
        RunContextWrapper,
        RunHooks,
        Runner,
    )
    from agents import (
        Tool as AgentTool,
    )
    from agents.tool_context import ToolContext
    from openai.types.responses import ResponseTextDeltaEvent

    from netra_resilience.integrations.openai import ResilientOpenAI
except ImportError as error:
    if error.name not in ("agents", "openai", "httpx2"):
        raise
    raise missing_extra("openai-agents", error) from error

from netra_resilience.context import current_context
from netra_resilience.engine import EventType, RunEvents, RunRequest, RunTools, Tool, ToolFailure
from netra_resilience.exceptions import InvalidOptionsError

__all__ = ["DEFAULT_MODEL", "AgentsEngine", "ResilientModelProvider"]

DEFAULT_MODEL = "gpt-4o-mini"
"""The model name used for agents that name none (the SDK's own default may change)."""

# The run's RunTools travel in the run's ResilienceContext (bound by the engine stack, copied
# into the tasks the SDK starts), so tools wrapped once serve every concurrent run.
_RUN_TOOLS = "netra.openai_agents.run_tools"


class ResilientModelProvider(ModelProvider):
    """A ``ModelProvider`` whose models call the provider through ``llm``'s pipeline.

    Give it as ``RunConfig(model_provider=...)`` (``AgentsEngine`` does); agents that name no
    model get ``default_model``.
    """

    def __init__(self, llm: ResilientOpenAI, *, default_model: str = DEFAULT_MODEL) -> None:
        if not isinstance(llm, ResilientOpenAI):
            raise InvalidOptionsError(
                "ResilientModelProvider", "llm", f"must be a ResilientOpenAI, got {type(llm)}"
            )
        if not isinstance(default_model, str) or not default_model:
            raise InvalidOptionsError(
                "ResilientModelProvider", "default_model", "must be a non-empty model name"
            )
        self.llm = llm
        self.default_model = default_model
        self._client = llm.as_async_openai()

    def get_model(self, model_name: str | None) -> Model:
        return OpenAIChatCompletionsModel(model_name or self.default_model, self._client)


def _tool_output(result: Any) -> Any:
    if isinstance(result, ToolFailure):
        return json.dumps(result.as_dict())  # what the model reads back: a typed refusal
    return result.value


def _resilient_tool(tool: FunctionTool) -> FunctionTool:
    # The SDK turns a tool's exception into an error string before it returns, which would
    # hide failures from the breaker and the retry: the pipeline calls the unwrapped
    # implementation when the SDK has one (a @function_tool), else the tool as given.
    original = tool.on_invoke_tool
    name = tool.name

    async def invoke(context: ToolContext[Any], arguments: str) -> Any:
        run = current_context()
        tools = run.properties.get(_RUN_TOOLS) if run is not None else None
        if not isinstance(tools, RunTools) or name not in tools:
            return await original(context, arguments)  # not run by an AgentsEngine
        call_id = getattr(context, "tool_call_id", None) or None  # the model's: stable keys
        return _tool_output(await tools.call(name, context, arguments, call_id=call_id))

    return dataclasses.replace(tool, on_invoke_tool=invoke)


def _implementation(tool: FunctionTool) -> Any:
    return getattr(tool.on_invoke_tool, "_invoke_tool_impl", tool.on_invoke_tool)


class _AgentGraph:
    """The starting agent and every agent reachable by handoff, copied with wrapped tools
    (the user's agents are left as they are)."""

    def __init__(self, agent: Agent[Any]) -> None:
        self.function_tools: dict[str, FunctionTool] = {}
        self._copies: dict[int, Agent[Any]] = {}
        self.entry = self._copy(agent)

    def _copy(self, agent: Agent[Any]) -> Agent[Any]:
        done = self._copies.get(id(agent))
        if done is not None:
            return done
        if agent.model_settings.retry is not None:
            raise InvalidOptionsError(
                "AgentsEngine",
                "agent",
                f"agent {agent.name!r} sets ModelSettings.retry: the "
                "LLM pipeline owns retries (nested retries multiply); remove it",
            )
        for tool in agent.tools:
            if isinstance(tool, FunctionTool):
                self.function_tools.setdefault(tool.name, tool)
        tools: list[AgentTool] = [
            _resilient_tool(t) if isinstance(t, FunctionTool) else t for t in agent.tools
        ]
        copy = agent.clone(tools=tools, handoffs=[])
        self._copies[id(agent)] = copy  # before the handoffs: they may lead back here
        copy.handoffs = [
            self._copy(target) if isinstance(target, Agent) else target for target in agent.handoffs
        ]
        return copy


class _EventHooks(RunHooks[Any]):
    """The SDK's run hooks as the engine's events (function tools run through
    ``RunTools.call``, which emits their tool events itself)."""

    def __init__(self, events: RunEvents, tools: RunTools) -> None:
        self._events = events
        self._tools = tools

    async def on_llm_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], *_: Any
    ) -> None:
        await self._events(EventType.AGENT_THINKING, text="calling the model", agent=agent.name)

    async def on_handoff(
        self, context: RunContextWrapper[Any], from_agent: Agent[Any], to_agent: Agent[Any]
    ) -> None:
        await self._events(
            EventType.AGENT_THINKING,
            text=f"handing off to {to_agent.name}",
            agent=from_agent.name,
            handoff=to_agent.name,
        )

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: AgentTool
    ) -> None:
        if tool.name not in self._tools:
            await self._events(EventType.TOOL_EXECUTING, tool=tool.name, call_id=_call_id(context))

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: AgentTool, result: object
    ) -> None:
        if tool.name not in self._tools:
            await self._events(
                EventType.TOOL_COMPLETED, tool=tool.name, call_id=_call_id(context), ok=True
            )


def _call_id(context: RunContextWrapper[Any]) -> str:
    return str(getattr(context, "tool_call_id", "") or "")


class AgentsEngine:
    """An engine (``await engine(request, events)``) that runs ``agent`` with the Agents SDK.

    ``llm`` makes every model call of the run (see :class:`ResilientModelProvider`);
    ``run_config`` is the SDK's (its ``model_provider`` is replaced, the rest kept);
    ``stream=True`` runs ``Runner.run_streamed`` and sends text deltas as events. The answer
    is the run's ``final_output``.
    """

    def __init__(
        self,
        agent: Agent[Any],
        llm: ResilientOpenAI,
        *,
        default_model: str = DEFAULT_MODEL,
        run_config: RunConfig | None = None,
        max_turns: int = 10,
        stream: bool = False,
    ) -> None:
        if not isinstance(agent, Agent):
            raise InvalidOptionsError("AgentsEngine", "agent", f"must be an Agent, got {agent!r}")
        if not isinstance(max_turns, int) or max_turns < 1:
            raise InvalidOptionsError("AgentsEngine", "max_turns", "must be an integer >= 1")
        config = run_config or RunConfig()
        if config.model_settings is not None and config.model_settings.retry is not None:
            raise InvalidOptionsError(
                "AgentsEngine",
                "run_config",
                "model_settings.retry is set: the LLM pipeline "
                "owns retries (nested retries multiply); remove it",
            )
        self.provider = ResilientModelProvider(llm, default_model=default_model)
        self._graph = _AgentGraph(agent)
        self.agent = self._graph.entry
        self.run_config = dataclasses.replace(config, model_provider=self.provider)
        self.max_turns = max_turns
        self.stream = stream

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The function tools of the agent and of every agent reachable by handoff."""
        return tuple(self._graph.function_tools)

    def tools(self, **options: Mapping[str, Any]) -> list[Tool]:
        """One engine :class:`Tool` per function tool, for ``resilience.engine(tools=...)``:
        ``run.tools(get_weather={"effect": "read", "rate": 1, "burst": 1, "timeout": 5})``.

        Declare each tool's ``effect`` (``read``/``idempotent``/``unsafe``): a tool left at the
        engine's default (``unsafe``) is retried only when its failure provably happened
        before the request left."""
        unknown = sorted(set(options) - set(self._graph.function_tools))
        if unknown:
            raise InvalidOptionsError(
                "AgentsEngine.tools",
                unknown[0],
                f"is not a function tool of the agent "
                f"(tools: {', '.join(self.tool_names) or 'none'})",
            )
        return [
            Tool(name, _implementation(tool), **dict(options.get(name, {})))
            for name, tool in self._graph.function_tools.items()
        ]

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        events.context.properties[_RUN_TOOLS] = request.tools
        hooks = _EventHooks(events, request.tools)
        if not self.stream:
            result = await Runner.run(
                self.agent,
                request.input,
                hooks=hooks,
                run_config=self.run_config,
                max_turns=self.max_turns,
            )
            return result.final_output
        streamed = Runner.run_streamed(
            self.agent,
            request.input,
            hooks=hooks,
            run_config=self.run_config,
            max_turns=self.max_turns,
        )
        try:
            async for event in streamed.stream_events():
                data = getattr(event, "data", None)
                if isinstance(data, ResponseTextDeltaEvent) and data.delta:
                    await events(EventType.AGENT_THINKING, text=data.delta, delta=True)
        finally:
            if not streamed.is_complete:  # we were cancelled, or an event failed: stop the run
                streamed.cancel()
        return streamed.final_output
