"""Degraded answers: stale cached answers, alternates each behind its own breaker, and a
canned reply last.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import NetraError, RateLimitRejectedError
from netra_resilience.fallback import FallbackArgs
from netra_resilience.hedging import HedgeTarget
from netra_resilience.llm._budget import BUDGET_EXHAUSTED, BudgetExhaustedError
from netra_resilience.llm._request import (
    LLM_DEPENDENCY_FAILURE,
    LlmRequest,
    error_body_type,
    request_of,
    status_of,
)
from netra_resilience.llm._stream import UNSEEN, FieldPair, field
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.predicates import OutcomePredicate


class DegradedAnswers:
    """Remembers the answers a fallback produced, so a cache around it does not store them.

    Objects are tracked by identity: weakly when they allow it (SDK models do), otherwise a
    bounded number of them is kept alive so an ``id`` is never reused while tracked.
    """

    __slots__ = ("_capacity", "_strong", "_weak")

    def __init__(self, capacity: int = 1024) -> None:
        self._weak: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._strong: OrderedDict[int, Any] = OrderedDict()
        self._capacity = capacity

    def add(self, value: Any) -> None:
        try:
            self._weak[id(value)] = value
        except TypeError:
            self._strong[id(value)] = value
            while len(self._strong) > self._capacity:
                self._strong.popitem(last=False)

    def __contains__(self, value: object) -> bool:
        key = id(value)
        return self._weak.get(key) is value or self._strong.get(key) is value


def _refused_chat(choices: Any) -> bool:
    for choice in choices:
        if field(choice, "finish_reason") == "content_filter":
            return True
        if field(field(choice, "message"), "refusal"):
            return True
    return False


def _refused_response(result: Any) -> bool:
    if field(result, "error"):
        return True
    status = field(result, "status")
    if status is not None and status != "completed":
        return True
    for item in field(result, "output") or ():
        for part in field(item, "content") or ():
            if field(part, "type") == "refusal":
                return True
    return False


def _is_message(result: Any) -> bool:
    """An Anthropic Messages API answer (``type == "message"``)."""
    return bool(field(result, "type") == "message" and field(result, "role") == "assistant")


def is_complete_answer(result: Any) -> bool:
    """False for nothing, errors, streams, refusals, content-filtered or failed responses."""
    if result is None or isinstance(result, BaseException | Outcome):
        return False
    if hasattr(result, "__aiter__"):
        return False
    # ``field`` for the top level, its Mapping check made once (this runs on every answer).
    read: Callable[..., Any] = (
        result.get if isinstance(result, Mapping) else partial(getattr, result)
    )
    choices = read("choices", None)
    if choices is not None:
        return bool(choices) and not _refused_chat(choices)
    if read("object", None) == "response" or read("output", None) is not None:
        return not _refused_response(result)
    if read("type", None) == "message" and read("role", None) == "assistant":
        return bool(read("content", None)) and read("stop_reason", None) != "refusal"
    return True


class CompleteAnswerCheck:
    """:func:`is_complete_answer` with its reads worked out once per answer type.

    For a pydantic chat completion (the SDK's ``ChatCompletion``: ``choices`` declared) the
    choices and each choice's ``finish_reason`` / ``message`` / ``refusal`` are read as plain
    attributes (:class:`FieldPair`), with no ``Mapping`` check per field nor pydantic's raising
    ``__getattr__`` for a stream's ``__aiter__``; any other type, or a malformed model, gets
    :func:`is_complete_answer` itself. One per filter (it remembers the last types seen).
    """

    __slots__ = ("_chat", "_choice", "_message", "_type")

    def __init__(self) -> None:
        self._type: type = type(None)
        self._chat = False
        self._choice = UNSEEN
        self._message = UNSEEN

    def __call__(self, result: Any) -> bool:
        kind = type(result)
        if kind is not self._type:
            declared = getattr(kind, "__pydantic_fields__", None)
            self._chat = (
                isinstance(declared, dict)
                and "choices" in declared
                and not hasattr(kind, "__aiter__")
            )
            self._type = kind
        if not self._chat:
            return is_complete_answer(result)
        try:
            choices = result.choices
        except AttributeError:  # built without it (model_construct of malformed data)
            return is_complete_answer(result)
        if choices is None:
            return is_complete_answer(result)
        return bool(choices) and not self._refused(choices)

    def _refused(self, choices: Any) -> bool:
        for choice in choices:
            pair = self._choice
            if pair.cls is not type(choice):
                pair = self._choice = FieldPair(type(choice), "finish_reason", "message")
            try:
                finish, message = pair.read(choice)
            except AttributeError:
                finish, message = field(choice, "finish_reason"), field(choice, "message")
            if finish == "content_filter":
                return True
            if message is None:
                continue
            pair = self._message
            if pair.cls is not type(message):
                pair = self._message = FieldPair(type(message), "refusal", "content")
            try:
                refusal = pair.read(message)[0]
            except AttributeError:
                refusal = field(message, "refusal")
            if refusal:
                return True
        return False


def answer_cache_filter(degraded: DegradedAnswers | None = None) -> Callable[[Any], bool]:
    """A ``CacheOptions.should_cache``: complete answers not produced by a fallback."""
    complete = CompleteAnswerCheck()

    def should_cache(result: Any) -> bool:
        if degraded is not None and result in degraded:
            return False
        return complete(result)

    return should_cache


_SKIP_STATES = frozenset({"open", "isolated"})

CONTEXT_WINDOW = "context_window_exceeded"
CONTENT_POLICY = "content_policy"
UNUSABLE_ANSWER = "unusable_answer"
MISSING_CAPABILITY = "missing_capability"
UNAVAILABLE = "unavailable"
FAILURE_CLASSES = (
    CONTEXT_WINDOW,
    CONTENT_POLICY,
    "rate_limited",
    "budget_exhausted",
    UNUSABLE_ANSWER,
    UNAVAILABLE,
)
"""What :func:`failure_class` answers; each is also the reason the chain marks."""

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "moderation_blocked"})


class UnusableAnswerError(NetraError):
    """A 200 whose answer cannot be used as asked (JSON mode content that is not JSON).

    Raised by the call path that knows the request, so the chain can replace the answer
    (the predicate of a fallback sees only the outcome); ``answer`` is the provider's reply.
    Not transient: the next model is tried, not the same one again.
    """

    def __init__(self, answer: Any, why: str) -> None:
        super().__init__(f"unusable answer: {why}")
        self.answer = answer
        self.transient = False


def check_answer(request: LlmRequest, result: Any) -> Any:
    """``result``, or :class:`UnusableAnswerError` when the request asked for JSON and a
    choice's content does not parse."""
    if "json_mode" not in required_capabilities(request):
        return result
    for choice in field(result, "choices") or ():
        content = field(field(choice, "message"), "content")
        if isinstance(content, str) and content:
            try:
                json.loads(content)
            except ValueError:
                raise UnusableAnswerError(result, "JSON mode content is not JSON") from None
    return result


def _error_code(exc: BaseException) -> str | None:
    if error_body_type(exc) == "invalid_request_error":
        # anthropic names no code for an overflow: "prompt is too long: N tokens > M maximum"
        body = getattr(exc, "body", None)
        message = body["error"].get("message") if isinstance(body, dict) else None
        if isinstance(message, str) and message.startswith("prompt is too long"):
            return "context_length_exceeded"
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    body = getattr(exc, "body", None)  # openai's APIStatusError keeps the parsed body
    if isinstance(body, dict):
        inner = body.get("error", body)
        code = inner.get("code") if isinstance(inner, dict) else None
        return code if isinstance(code, str) else None
    return None


def _unusable(result: Any, request: LlmRequest | None) -> bool:
    """Empty, cut by the output cap, refused, or (JSON mode) not JSON: a 200 to replace."""
    if result is None:
        return True
    if hasattr(result, "__aiter__") or isinstance(result, BaseException | Outcome):
        return False  # streams are judged chunk by chunk, never here
    choices = field(result, "choices")
    if choices is not None:
        if not choices:
            return True
        for choice in choices:
            message = field(choice, "message")
            content = field(message, "content")
            if field(choice, "finish_reason") == "length":
                return True
            if not content and not field(message, "tool_calls") and not field(message, "refusal"):
                return True
            if content and request is not None and "json_mode" in required_capabilities(request):
                try:
                    json.loads(content)
                except ValueError:
                    return True
        return False
    if field(result, "object") == "response":
        return field(result, "status") == "incomplete" or not field(result, "output")
    if _is_message(result):
        return not field(result, "content") or field(result, "stop_reason") == "max_tokens"
    return False


def failure_class(outcome: Outcome[Any], request: LlmRequest | None = None) -> str | None:
    """Which fallback an LLM outcome calls for, or ``None`` (a success, or a 4xx that is the
    caller's to see). ``context_window_exceeded``, ``content_policy`` (an error, a
    ``content_filter`` finish or a refusal), ``rate_limited`` (a 429 the retry gave up on,
    e.g. its ``Retry-After`` over the cap), ``budget_exhausted``, ``unusable_answer`` (a 200
    that is empty, cut at the output cap or not the JSON asked for), ``unavailable``."""
    exc = outcome.exception
    if isinstance(exc, UnusableAnswerError):
        return UNUSABLE_ANSWER
    if exc is None:
        result = outcome.result
        choices = field(result, "choices") if result is not None else None
        if choices and _refused_chat(choices):
            return CONTENT_POLICY
        if (
            field(result, "object") == "response"
            and _refused_response(result)
            and (field(result, "status") in (None, "completed"))
        ):
            return CONTENT_POLICY
        if _is_message(result) and field(result, "stop_reason") == "refusal":
            return CONTENT_POLICY
        return UNUSABLE_ANSWER if _unusable(result, request) else None
    code = _error_code(exc)
    if code in _CONTEXT_CODES:
        return CONTEXT_WINDOW
    if code in _POLICY_CODES:
        return CONTENT_POLICY
    if isinstance(exc, BudgetExhaustedError):
        return BUDGET_EXHAUSTED
    if status_of(exc) == 429 or isinstance(exc, RateLimitRejectedError):
        return "rate_limited"
    if LLM_DEPENDENCY_FAILURE(outcome):
        return UNAVAILABLE
    return None


def _class_outcome(outcome: Outcome[Any]) -> bool:
    return failure_class(outcome) is not None


LLM_FALLBACK_CASE = OutcomePredicate(_class_outcome, "LLM failure a fallback can answer")
"""The fallback chain's predicate: :data:`LLM_DEPENDENCY_FAILURE` plus the classes a
different model can fix (context overflow, content policy, an unusable 200)."""


def required_capabilities(request: LlmRequest) -> frozenset[str]:
    """``tools`` when the request sends tools/functions, ``json_mode`` when it asks for a JSON
    answer (chat ``response_format``, Responses ``text.format``)."""
    needs = set()
    params = request.params
    if params.get("tools") or params.get("functions"):
        needs.add("tools")
    fmt = params.get("response_format")
    text = params.get("text")
    if fmt is None and isinstance(text, dict):
        fmt = text.get("format")
    if field(fmt, "type") in ("json_object", "json_schema"):
        needs.add("json_mode")
    return frozenset(needs)


_CANNED_CLASSES = frozenset({UNAVAILABLE, "rate_limited", BUDGET_EXHAUSTED})

CannedReply = Callable[[FallbackArgs], Any]
"""``canned(args) -> value | Awaitable[value]``: the degraded answer of last resort."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternate:
    """One step of a fallback chain.

    ``call`` receives the primary call's positional and keyword arguments (for the LLM
    wrappers: the :class:`LlmRequest`). ``pipeline``, when given, runs it with its own
    circuit breaker, timeout, ... — name that pipeline after the alternate so its marks read
    well (``gpt-4o-mini=circuit_open``).

    What the chain reads to pick a step by the failure's class (``None``: unknown):
    ``provider`` (a content-policy refusal goes to another provider), ``context_window``
    (tokens; an overflow goes to a bigger window), ``capabilities`` (e.g. ``{"tools",
    "json_mode"}``; an alternate lacking one the request needs is skipped).
    """

    name: str
    call: Callable[..., Awaitable[Any]]
    pipeline: Pipeline | None = None
    provider: str | None = None
    context_window: int | None = None
    capabilities: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Alternate.name must be a non-empty string")
        if not callable(self.call):
            raise ValueError("Alternate.call must be callable")
        if self.context_window is not None and (
            isinstance(self.context_window, bool)
            or not isinstance(self.context_window, int)
            or self.context_window <= 0
        ):
            raise ValueError("Alternate.context_window must be a positive int")
        if self.capabilities is not None:
            object.__setattr__(self, "capabilities", frozenset(self.capabilities))


def alternate_hedge(alternate: Alternate) -> HedgeTarget:
    """A hedge target (``HedgingOptions(targets=...)``) that sends the hedge to ``alternate``,
    through its own pipeline (its breaker, timeout) when it has one."""

    async def hedge(
        context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Outcome[Any]:
        return await FallbackChain._try(
            alternate, FallbackArgs(Outcome(None), context, args, kwargs)
        )

    return hedge


def breaker_open(pipeline: Pipeline | None) -> bool:
    """True when a circuit breaker in ``pipeline`` is open or isolated (a call would be refused).

    An expired break reads as half-open, which is not skipped: that call is the probe.
    """
    if pipeline is None:
        return False
    for strategy in pipeline.strategies:
        if strategy.kind == "circuit_breaker" and str(getattr(strategy, "state", "")) in (
            _SKIP_STATES
        ):
            return True
    return False


class FallbackChain:
    """A fallback action walking ``alternates`` in order, then ``canned_reply``, choosing by
    the failure's class (:func:`failure_class`):

    * ``context_window_exceeded``: only alternates with a bigger ``context_window`` than the
      primary's (``context_window``) and than any that overflowed too;
    * ``content_policy``: only another ``provider`` than the primary's (and than any that
      refused too) — never the same one again;
    * ``rate_limited`` (a 429 whose ``Retry-After`` exceeded the retry's cap reaches here at
      once), ``budget_exhausted``, ``unusable_answer``, ``unavailable``: the next alternate;
    * any class: an alternate lacking a capability the request needs is skipped.

    ``dependency`` is the degraded dependency's name (the primary pipeline's name, so the
    fallback strategy keeps these more specific marks): it is marked with the class first
    (``llm=context_window_exceeded``), then ``fallback`` when an alternate answers, or
    ``canned_reply`` (only for outages, rate limits and budgets: a too-long prompt or a
    refusal gets no canned answer). A skipped alternate marks its own name ``circuit_open``,
    ``missing_capability`` or ``skipped``, a failed one its class or ``error`` (unless its
    pipeline already said why). When no step answers the primary's outcome is returned
    unchanged (so a stale cache can still answer).
    """

    __slots__ = (
        "_alternates",
        "_canned",
        "_context_window",
        "_dependency",
        "_provider",
        "degraded",
    )

    def __init__(
        self,
        alternates: Sequence[Alternate] = (),
        *,
        canned_reply: CannedReply | None = None,
        dependency: str = "llm",
        degraded: DegradedAnswers | None = None,
        provider: str | None = None,
        context_window: int | None = None,
    ) -> None:
        self._alternates = tuple(alternates)
        for alternate in self._alternates:
            if not isinstance(alternate, Alternate):
                raise TypeError(f"expected Alternate, got {type(alternate).__name__}")
        if canned_reply is not None and not callable(canned_reply):
            raise TypeError("canned_reply must be callable")
        self._canned = canned_reply
        self._dependency = dependency
        self._provider = provider
        self._context_window = context_window
        self.degraded = degraded if degraded is not None else DegradedAnswers()

    @property
    def alternates(self) -> tuple[Alternate, ...]:
        return self._alternates

    async def __call__(self, args: FallbackArgs) -> Outcome[Any]:
        degradation = args.context.degradation
        request = request_of(args.args, args.kwargs)
        kind = failure_class(args.outcome, request)
        if kind is None:
            return args.outcome
        if kind != UNAVAILABLE and degradation.reason(self._dependency) != kind:
            degradation.mark(self._dependency, kind)  # why the chain stepped
        needs = required_capabilities(request) if request is not None else frozenset()
        window = self._context_window or 0
        refused_by = {self._provider} if self._provider is not None else set()
        for alternate in self._alternates:
            reason = self._skip(alternate, kind, needs, window, refused_by)
            if reason is not None:
                degradation.mark(alternate.name, reason)
                continue
            before = len(degradation.history)
            outcome = await self._try(alternate, args)
            step = failure_class(outcome, request)
            if step is None:
                self.degraded.add(outcome.result)
                degradation.mark(self._dependency, DegradationReason.FALLBACK)
                return outcome
            if step == CONTENT_POLICY and alternate.provider is not None:
                refused_by.add(alternate.provider)
            if step == CONTEXT_WINDOW and alternate.context_window is not None:
                window = max(window, alternate.context_window)
            if not any(e.dependency == alternate.name for e in degradation.history[before:]):
                degradation.mark(
                    alternate.name, step if step != UNAVAILABLE else DegradationReason.ERROR
                )
        if self._canned is not None and kind in _CANNED_CLASSES:
            value = self._canned(args)
            if inspect.isawaitable(value):
                value = await value
            self.degraded.add(value)
            degradation.mark(self._dependency, DegradationReason.CANNED_REPLY)
            return Outcome(value)
        return args.outcome

    @staticmethod
    def _skip(
        alternate: Alternate, kind: str, needs: frozenset[str], window: int, refused_by: set[str]
    ) -> str | None:
        """Why ``alternate`` cannot help with a failure of class ``kind`` (None: try it)."""
        if breaker_open(alternate.pipeline):
            return DegradationReason.CIRCUIT_OPEN
        if alternate.capabilities is not None and not needs <= alternate.capabilities:
            return MISSING_CAPABILITY
        if kind == CONTEXT_WINDOW and (
            alternate.context_window is None or alternate.context_window <= window
        ):
            return DegradationReason.SKIPPED  # no bigger window than the one that overflowed
        if kind == CONTENT_POLICY and (
            alternate.provider is not None and alternate.provider in refused_by
        ):
            return DegradationReason.SKIPPED  # the same provider would refuse again
        return None

    @staticmethod
    async def _try(alternate: Alternate, args: FallbackArgs) -> Outcome[Any]:
        if alternate.pipeline is not None:
            return await alternate.pipeline.execute_outcome(
                alternate.call, *args.args, context=args.context, **args.kwargs
            )
        try:
            return Outcome(await alternate.call(*args.args, **args.kwargs))
        except Exception as exc:
            return Outcome(None, exc)
