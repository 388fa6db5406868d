"""Degraded answers: stale cached answers, alternates each behind its own breaker, and a
canned reply last.
"""

from __future__ import annotations

import inspect
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netra_resilience.degradation import DegradationReason
from netra_resilience.fallback import FallbackArgs
from netra_resilience.llm._stream import field
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline


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


def is_complete_answer(result: Any) -> bool:
    """False for nothing, errors, streams, refusals, content-filtered or failed responses."""
    if result is None or isinstance(result, BaseException | Outcome):
        return False
    if hasattr(result, "__aiter__"):
        return False
    choices = field(result, "choices")
    if choices is not None:
        return bool(choices) and not _refused_chat(choices)
    if field(result, "object") == "response" or field(result, "output") is not None:
        return not _refused_response(result)
    return True


def answer_cache_filter(degraded: DegradedAnswers | None = None) -> Callable[[Any], bool]:
    """A ``CacheOptions.should_cache``: complete answers not produced by a fallback."""

    def should_cache(result: Any) -> bool:
        if degraded is not None and result in degraded:
            return False
        return is_complete_answer(result)

    return should_cache


_SKIP_STATES = frozenset({"open", "isolated"})

CannedReply = Callable[[FallbackArgs], Any]
"""``canned(args) -> value | Awaitable[value]``: the degraded answer of last resort."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternate:
    """One step of a fallback chain.

    ``call`` receives the primary call's positional and keyword arguments (for the LLM
    wrappers: the :class:`LlmRequest`). ``pipeline``, when given, runs it with its own
    circuit breaker, timeout, ... — name that pipeline after the alternate so its marks read
    well (``gpt-4o-mini=circuit_open``).
    """

    name: str
    call: Callable[..., Awaitable[Any]]
    pipeline: Pipeline | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Alternate.name must be a non-empty string")
        if not callable(self.call):
            raise ValueError("Alternate.call must be callable")


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
    """A fallback action walking ``alternates`` in order, then ``canned_reply``.

    ``dependency`` is the degraded dependency's name (the primary pipeline's name, so the
    fallback strategy keeps these more specific marks): a successful alternate marks it
    ``fallback``, the canned reply ``canned_reply``; a skipped alternate marks its own name
    ``circuit_open``, a failed one ``error`` (unless its pipeline already said why). When every
    step fails the primary's failure is returned unchanged (so a stale cache can still answer).
    """

    __slots__ = ("_alternates", "_canned", "_dependency", "degraded")

    def __init__(
        self,
        alternates: Sequence[Alternate] = (),
        *,
        canned_reply: CannedReply | None = None,
        dependency: str = "llm",
        degraded: DegradedAnswers | None = None,
    ) -> None:
        self._alternates = tuple(alternates)
        for alternate in self._alternates:
            if not isinstance(alternate, Alternate):
                raise TypeError(f"expected Alternate, got {type(alternate).__name__}")
        if canned_reply is not None and not callable(canned_reply):
            raise TypeError("canned_reply must be callable")
        self._canned = canned_reply
        self._dependency = dependency
        self.degraded = degraded if degraded is not None else DegradedAnswers()

    @property
    def alternates(self) -> tuple[Alternate, ...]:
        return self._alternates

    async def __call__(self, args: FallbackArgs) -> Outcome[Any]:
        degradation = args.context.degradation
        for alternate in self._alternates:
            if breaker_open(alternate.pipeline):
                degradation.mark(alternate.name, DegradationReason.CIRCUIT_OPEN)
                continue
            before = len(degradation.history)
            outcome = await self._try(alternate, args)
            if outcome.exception is None:
                self.degraded.add(outcome.result)
                degradation.mark(self._dependency, DegradationReason.FALLBACK)
                return outcome
            if not any(e.dependency == alternate.name for e in degradation.history[before:]):
                degradation.mark(alternate.name, DegradationReason.ERROR)
        if self._canned is not None:
            value = self._canned(args)
            if inspect.isawaitable(value):
                value = await value
            self.degraded.add(value)
            degradation.mark(self._dependency, DegradationReason.CANNED_REPLY)
            return Outcome(value)
        return args.outcome

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
