"""Which answers may be cached: complete, non-refused, not produced by a fallback.

A cache that stores the apology written during an outage replays it after recovery
(Devwhisper#293). Only a complete answer the primary dependency produced is stored.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from netra_resilience.llm._trackers import field
from netra_resilience.outcome import Outcome


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
