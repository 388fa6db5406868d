"""Stream trackers: when has a stream *really* finished, and which chunks are only preamble?

A body that simply stops is not a complete answer (Portkey #1797: a cut stream looked like a
clean 200). Completion is read from the chunks themselves, duck-typed so the core needs no
SDK: chat completions finish when every choice has a ``finish_reason``; the Responses API
finishes on ``response.completed`` / ``response.incomplete``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class StreamTracker(Protocol):
    """Observes every chunk of one stream (one tracker per stream)."""

    def observe(self, chunk: Any) -> None:
        """Record a chunk; raise to signal a provider error event inside the stream."""

    def is_preamble(self, chunk: Any) -> bool:
        """True for chunks that carry no answer yet (a role-only delta, ``response.created``)."""

    @property
    def complete(self) -> bool:
        """True once the terminal event was seen."""


def field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: SDK models and plain JSON dicts alike."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class StreamProviderError(Exception):
    """The provider reported an error inside the stream (an SSE ``error`` event)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"provider sent {kind} inside the stream")
        self.kind = kind


class ChatStreamTracker:
    """Chat completions: complete when every choice index seen has a ``finish_reason``."""

    __slots__ = ("_finished", "_open")

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._finished = False

    def observe(self, chunk: Any) -> None:
        if field(chunk, "error"):
            raise StreamProviderError("an error chunk")
        for choice in field(chunk, "choices") or ():
            index = field(choice, "index") or 0
            if field(choice, "finish_reason") is not None:
                self._open.discard(index)
                self._finished = True
            else:
                self._open.add(index)

    def is_preamble(self, chunk: Any) -> bool:
        if field(chunk, "usage"):
            return False
        for choice in field(chunk, "choices") or ():
            if field(choice, "finish_reason") is not None:
                return False
            delta = field(choice, "delta")
            if delta is None:
                return False
            for name in ("content", "tool_calls", "refusal", "function_call", "audio"):
                if field(delta, name):
                    return False
        return True

    @property
    def complete(self) -> bool:
        return self._finished and not self._open


_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete"})
_RESPONSES_FAILED = frozenset({"response.failed", "error"})
_RESPONSES_PREAMBLE = frozenset({"response.created", "response.in_progress", "response.queued"})


class ResponsesStreamTracker:
    """Responses API: complete on ``response.completed``/``incomplete``; ``failed`` raises."""

    __slots__ = ("_complete",)

    def __init__(self) -> None:
        self._complete = False

    def observe(self, chunk: Any) -> None:
        kind = field(chunk, "type")
        if kind in _RESPONSES_FAILED:
            raise StreamProviderError(str(kind))
        if kind in _RESPONSES_TERMINAL:
            self._complete = True

    def is_preamble(self, chunk: Any) -> bool:
        return field(chunk, "type") in _RESPONSES_PREAMBLE

    @property
    def complete(self) -> bool:
        return self._complete


class EndOfBodyTracker:
    """For streams without a terminal event: a clean end of the body counts as complete."""

    __slots__ = ()

    def observe(self, chunk: Any) -> None:
        return None

    def is_preamble(self, chunk: Any) -> bool:
        return False

    @property
    def complete(self) -> bool:
        return True


def tracker_for(kind: str) -> StreamTracker:
    """The tracker for an API kind (``"chat"``, ``"responses"``; others: end of body)."""
    if kind == "chat":
        return ChatStreamTracker()
    if kind == "responses":
        return ResponsesStreamTracker()
    return EndOfBodyTracker()
