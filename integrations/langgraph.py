"""LangGraph adapter (with langchain-core): a compiled graph run as a resilient engine.

::

    llm = ResilientOpenAI(AsyncOpenAI(), resilience.llm(canned_reply=canned_reply("Busy.")))
    model = resilient_chat_model(llm, "gpt-4o-mini")          # a ChatOpenAI
    tools = resilient_tools([get_weather])                    # langchain tools, for ToolNode
    graph = build_my_graph(model.bind_tools(tools), tools)    # your StateGraph, compiled
    run = LangGraphEngine(graph, checkpointer=ResilientCheckpointer(saver, resilience))
    engine = resilience.engine(run, tools=engine_tools(tools, get_weather={"effect": "read"}))

* **Model calls**: :func:`resilient_chat_model` is a ``ChatOpenAI`` whose async calls go
  through the :class:`ResilientOpenAI` facade: timeouts, retry honouring ``Retry-After``,
  breaker, last good answer served stale, fallback chain, streaming rules; its own
  ``max_retries`` is 0.
* **Tools**: :func:`resilient_tools` copies langchain tools so that, inside a run, each call
  goes through the engine's tool pipeline (:func:`engine_tools` makes the engine ``Tool`` s,
  options per name); a failed, rate-limited or open-breaker tool answers the model with the
  :class:`~netra_resilience.engine.ToolFailure` as JSON.
* **One retry owner**: a graph whose nodes carry a LangGraph ``RetryPolicy`` is refused
  (the pipelines retry; nested retries multiply).
* **Checkpointer**: :class:`ResilientCheckpointer` puts the saver's database behind a
  pipeline with a breaker; while it fails, a run starts from no checkpoint and saves are
  skipped, flagged ``checkpointer=error`` / ``skipped`` instead of failing the answer.
* **Events**: the graph's callbacks mapped to ours: each chat-model start is
  ``agent_thinking``, each streamed token (``stream=True``) an ``agent_thinking`` with
  ``delta``, tools not given to the engine ``tool_executing``/``tool_completed``
  (``ok: false`` when the tool raised).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from netra_resilience.integrations import missing_extra

try:
    from langchain_core.callbacks import AsyncCallbackHandler
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, GenerationChunk
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool, StructuredTool
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.base import (
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
    )
    from langgraph.pregel import Pregel
    from pydantic import SecretStr

    from netra_resilience.integrations.openai import ResilientOpenAI
except ImportError as error:
    known = ("langchain_core", "langchain_openai", "langgraph", "openai", "httpx2")
    if error.name is None or error.name.split(".")[0] not in known:
        raise
    raise missing_extra("langgraph", error) from error

from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.context import current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.engine import EventType, RunEvents, RunRequest, RunTools, Tool, ToolFailure
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health import Criticality, Dependency
from netra_resilience.pipeline import Pipeline
from netra_resilience.runtime import Resilience
from netra_resilience.timeout import TimeoutOptions

__all__ = [
    "DEFAULT_MODEL",
    "LangGraphEngine",
    "ResilientCheckpointer",
    "engine_tools",
    "resilient_chat_model",
    "resilient_tools",
]

DEFAULT_MODEL = "gpt-4o-mini"

# The run's RunTools travel in the run's ResilienceContext (bound by the engine stack and
# copied into the tasks LangGraph starts), so tools copied once serve every concurrent run.
_RUN_TOOLS = "netra.langgraph.run_tools"

T = TypeVar("T")


# -- the chat model ------------------------------------------------------------------------
class _Raw:
    """What ``with_raw_response.create`` returns in the SDK, for an answer that came through
    the pipeline (a cached or canned one has no HTTP response to show)."""

    __slots__ = ("_value", "headers")

    def __init__(self, value: Any) -> None:
        self._value = value
        self.headers: dict[str, str] = {}

    def parse(self) -> Any:
        return self._value


class _Completions:
    """``chat.completions`` as ``ChatOpenAI`` calls it (``create`` and
    ``with_raw_response.create``), through the pipeline."""

    __slots__ = ("_llm", "with_raw_response")

    def __init__(self, llm: ResilientOpenAI) -> None:
        self._llm = llm
        self.with_raw_response = _RawCompletions(llm)

    async def create(self, **params: Any) -> Any:
        return await self._llm.create("chat", params)


class _RawCompletions:
    __slots__ = ("_llm",)

    def __init__(self, llm: ResilientOpenAI) -> None:
        self._llm = llm

    async def create(self, **params: Any) -> _Raw:
        return _Raw(await self._llm.create("chat", params))


def resilient_chat_model(
    llm: ResilientOpenAI, model: str = DEFAULT_MODEL, **options: Any
) -> ChatOpenAI:
    """A ``ChatOpenAI`` (``ainvoke``/``astream``/``bind_tools`` as usual) whose async calls
    go through ``llm``'s pipeline; ``options`` go to ``ChatOpenAI`` (``temperature``, ...).
    Use the async API: LangGraph's ``ainvoke``/``astream_events`` do.

    Streaming is off by default (``disable_streaming=True``): ``astream_events`` would
    otherwise stream every call, and a stream is never cached, so no stale answer could be
    served. Pass ``disable_streaming=False`` for token deltas (``LangGraphEngine(stream=True)``).
    """
    if not isinstance(llm, ResilientOpenAI):
        raise InvalidOptionsError(
            "resilient_chat_model", "llm", f"must be a ResilientOpenAI: {llm!r}"
        )
    for name in ("max_retries", "async_client", "root_async_client", "api_key", "base_url"):
        if name in options:
            raise InvalidOptionsError(
                "resilient_chat_model", name, "is taken from llm (its pipeline owns retries)"
            )
    client = llm.client
    return ChatOpenAI(
        model=model,
        api_key=SecretStr(client.api_key),  # for the sync client ChatOpenAI builds, unused
        base_url=str(client.base_url),
        max_retries=0,
        async_client=_Completions(llm),
        root_async_client=llm.as_async_openai(),
        **{"disable_streaming": True, **options},
    )


# -- tools ---------------------------------------------------------------------------------
def _tool_output(result: Any) -> Any:
    if isinstance(result, ToolFailure):
        return json.dumps(result.as_dict())  # what the model reads back: a typed refusal
    return result.value


def _resilient_tool(tool: BaseTool) -> BaseTool:
    name = tool.name

    async def run(**arguments: Any) -> Any:
        context = current_context()
        tools = context.properties.get(_RUN_TOOLS) if context is not None else None
        if not isinstance(tools, RunTools) or name not in tools:
            return await tool.ainvoke(arguments)  # not run by a LangGraphEngine
        return _tool_output(await tools.call(name, arguments))

    run.netra_original = tool  # type: ignore[attr-defined]  # what engine_tools() runs
    return StructuredTool(
        name=name,
        description=tool.description,
        args_schema=tool.args_schema if tool.args_schema is not None else {},
        coroutine=run,
        metadata={**(tool.metadata or {}), "netra_resilient": True},
        return_direct=tool.return_direct,
    )


def resilient_tools(tools: Sequence[BaseTool]) -> list[BaseTool]:
    """Copies of langchain ``tools`` (give them to the model's ``bind_tools`` and to
    ``ToolNode``) that run through the engine's tool pipelines inside a run."""
    copies = []
    for tool in tools:
        if not isinstance(tool, BaseTool):
            raise InvalidOptionsError("resilient_tools", "tools", f"not a langchain tool: {tool!r}")
        copies.append(_resilient_tool(tool))
    return copies


async def _invoke_tool(tool: BaseTool, arguments: Mapping[str, Any]) -> Any:
    return await tool.ainvoke(dict(arguments))  # raises: the pipeline sees the failure


def engine_tools(tools: Sequence[BaseTool], **options: Mapping[str, Any]) -> list[Tool]:
    """One engine :class:`Tool` per langchain tool, for ``resilience.engine(tools=...)``:
    ``engine_tools(tools, get_weather={"effect": "read", "rate": 1})``. Declare each tool's
    ``effect``: one left ``unsafe`` (the default) is retried only when its failure provably
    happened before the request left. Give the originals or the :func:`resilient_tools`
    copies (the copies' wrapped tools are what runs)."""
    originals = {t.name: getattr(getattr(t, "coroutine", None), "netra_original", t) for t in tools}
    unknown = sorted(set(options) - set(originals))
    if unknown:
        raise InvalidOptionsError(
            "engine_tools", unknown[0], f"is not one of the tools ({', '.join(originals)})"
        )

    def bound(tool: BaseTool) -> Any:
        async def call(arguments: Mapping[str, Any]) -> Any:
            return await _invoke_tool(tool, arguments)

        return call

    return [
        Tool(name, bound(tool), **dict(options.get(name, {}))) for name, tool in originals.items()
    ]


# -- the checkpointer ----------------------------------------------------------------------
def _checkpointer_breaker() -> CircuitBreakerOptions:
    """Open after half of at least 3 calls in 30 s failed; stay open 15 s."""
    return CircuitBreakerOptions(
        failure_ratio=0.5, minimum_throughput=3, sampling_duration=30.0, break_duration=15.0
    )


class ResilientCheckpointer(BaseCheckpointSaver[Any]):
    """A checkpoint saver whose database calls run through a pipeline (breaker + timeout),
    registered as dependency ``name`` (``optional`` by default: the answer does not need
    it). While it fails, loading a thread's checkpoint gives none (the run starts fresh) and
    saves are skipped; each marks ``name`` on the run (``error`` / ``skipped`` when the
    breaker is open), so the user sees ``Netra-Degraded: checkpointer=...``."""

    def __init__(
        self,
        saver: BaseCheckpointSaver[Any],
        resilience: Resilience,
        *,
        name: str = "checkpointer",
        criticality: Criticality | str = Criticality.OPTIONAL,
        timeout: float = 2.0,
        breaker: CircuitBreakerOptions | None = None,
    ) -> None:
        if not isinstance(saver, BaseCheckpointSaver):
            raise InvalidOptionsError("ResilientCheckpointer", "saver", f"not a saver: {saver!r}")
        super().__init__(serde=saver.serde)
        self.saver = saver
        self.name = name
        pipeline = (
            resilience.pipeline(name)
            .add_circuit_breaker(breaker or _checkpointer_breaker())
            .add_timeout(TimeoutOptions(timeout=timeout))
            .build()
        )
        self.pipeline: Pipeline = resilience.add(Dependency(name, criticality, pipeline=pipeline))

    def _mark(self, exc: BaseException | None) -> None:
        context = current_context()
        if context is None:
            return
        reason = DegradationReason.SKIPPED if _is_open(exc) else DegradationReason.ERROR
        context.degradation.mark(self.name, reason)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        outcome = await self.pipeline.execute_outcome(self.saver.aget_tuple, config)
        if outcome.exception is not None:
            self._mark(outcome.exception)
            return None  # no checkpoint: the run starts from its input
        result: CheckpointTuple | None = outcome.result
        return result

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        outcome = await self.pipeline.execute_outcome(
            self.saver.aput, config, checkpoint, metadata, new_versions
        )
        if outcome.exception is not None:
            self._mark(outcome.exception)
            configurable = {**config.get("configurable", {}), "checkpoint_id": checkpoint["id"]}
            return {**config, "configurable": configurable}  # not saved; the run goes on
        saved: RunnableConfig | None = outcome.result
        return saved if saved is not None else config

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        outcome = await self.pipeline.execute_outcome(
            self.saver.aput_writes, config, writes, task_id, task_path
        )
        if outcome.exception is not None:
            self._mark(outcome.exception)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        async for item in self.saver.alist(config, filter=filter, before=before, limit=limit):
            yield item

    async def adelete_thread(self, thread_id: str) -> None:
        await self.pipeline.execute(self.saver.adelete_thread, thread_id)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)


def _is_open(exc: BaseException | None) -> bool:
    from_breaker = type(exc).__name__ in ("BrokenCircuitError", "IsolatedCircuitError")
    return exc is not None and from_breaker


# -- the engine ----------------------------------------------------------------------------
def _check_retry_policies(graph: Pregel[Any, Any, Any, Any]) -> None:
    if graph.retry_policy:
        raise InvalidOptionsError(
            "LangGraphEngine",
            "graph",
            "has a RetryPolicy: the pipelines own retries "
            "(nested retries multiply); compile it without one",
        )
    for name, node in graph.nodes.items():
        if node.retry_policy:
            raise InvalidOptionsError(
                "LangGraphEngine",
                "graph",
                f"node {name!r} has a RetryPolicy: the pipelines "
                "own retries (nested retries multiply); add the node without retry_policy",
            )


def _answer(output: Any) -> Any:
    """The graph's answer: the last message's text for a messages state, else the state."""
    messages = output.get("messages") if isinstance(output, Mapping) else None
    if isinstance(messages, list) and messages and isinstance(messages[-1], BaseMessage):
        return messages[-1].text
    return output


class LangGraphEngine:
    """An engine (``await engine(request, events)``) running a compiled LangGraph graph.

    A ``str`` input becomes ``{"messages": [("user", input)]}``; the answer is the last
    message's text (or the final state when it has no messages). A request's
    ``metadata["thread_id"]`` picks the checkpointer's thread (default: one per run).
    ``checkpointer`` replaces the graph's (usually a :class:`ResilientCheckpointer`).
    """

    def __init__(
        self,
        graph: Pregel[Any, Any, Any, Any],
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        stream: bool = False,
        recursion_limit: int = 25,
    ) -> None:
        if not isinstance(graph, Pregel):
            raise InvalidOptionsError(
                "LangGraphEngine", "graph", f"not a compiled graph: {graph!r}"
            )
        _check_retry_policies(graph)
        if checkpointer is not None:
            graph = graph.copy(update={"checkpointer": checkpointer})
        self.graph = graph
        self.stream = stream
        self.recursion_limit = recursion_limit

    async def __call__(self, request: RunRequest, events: RunEvents, /) -> Any:
        events.context.properties[_RUN_TOOLS] = request.tools
        data = request.input
        if isinstance(data, str):
            data = {"messages": [("user", data)]}
        configurable: dict[str, Any] = {}
        thread = request.metadata.get("thread_id")
        if thread is None and self.graph.checkpointer:
            thread = request.run_id  # a checkpointed graph needs a thread: the run's own
        if thread is not None:
            configurable["thread_id"] = str(thread)
        config: RunnableConfig = {
            "configurable": configurable,
            "recursion_limit": self.recursion_limit,
        }
        handler = _StreamingEventsHandler if self.stream else _EventsHandler
        config["callbacks"] = [handler(events, request.tools)]
        return _answer(await self.graph.ainvoke(data, config))


class _EventsHandler(AsyncCallbackHandler):
    """The graph's callbacks mapped to our events.

    A callback handler, not ``astream_events``: that one builds and queues an event dict for
    every chain step of every node (~2.5 ms a run with a tool); we need four callbacks.
    ``run_inline``: each event is sent before the graph goes on, so their order is the run's.
    """

    run_inline = True

    def __init__(self, events: RunEvents, tools: RunTools) -> None:
        self.events = events
        self.tools = tools
        self._names: dict[UUID, str] = {}  # tool runs not given to the engine, by run id

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        await self.events(EventType.AGENT_THINKING, text="calling the model")

    async def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        **kwargs: Any,
    ) -> None:
        text = chunk.text if chunk is not None else token if isinstance(token, str) else ""
        if text:
            await self.events(EventType.AGENT_THINKING, text=text, delta=True)

    async def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        name = name or (serialized or {}).get("name") or "tool"
        if name in self.tools:
            return  # RunTools.call emits this tool's events itself
        self._names[run_id] = name
        await self.events(EventType.TOOL_EXECUTING, tool=name, call_id=str(run_id))

    async def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        await self._completed(run_id, ok=True)

    async def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        await self._completed(run_id, ok=False)

    async def _completed(self, run_id: UUID, *, ok: bool) -> None:
        name = self._names.pop(run_id, None)
        if name is not None:
            await self.events(EventType.TOOL_COMPLETED, tool=name, call_id=str(run_id), ok=ok)


class _StreamingEventsHandler(_EventsHandler):
    """Also asks chat models to stream (``stream=True``): langchain streams a model call when
    a handler has the two ``tap_output_*`` methods of its streaming-handler protocol (what
    ``astream_events`` has); outputs pass through untouched, tokens come as callbacks."""

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output
