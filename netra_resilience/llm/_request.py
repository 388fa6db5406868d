"""``LlmRequest``: one LLM call's parameters, as the pipeline's cache key and fallbacks see them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """The keyword arguments of one LLM call and which API they are for.

    ``kind`` names the API (``"chat"`` for chat completions, ``"responses"``); ``params`` are the
    keyword arguments exactly as the caller passed them. Being the first positional argument
    of the call a pipeline runs, it is what a cache key function and a fallback chain read, so
    every alternate receives the same request the primary got.
    """

    kind: str
    params: Mapping[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.params.get("stream"))

    @property
    def model(self) -> str | None:
        model = self.params.get("model")
        return model if isinstance(model, str) else None

    def with_params(self, **overrides: Any) -> LlmRequest:
        """A copy with some parameters replaced (e.g. another ``model``)."""
        return LlmRequest(self.kind, {**self.params, **overrides})


def request_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> LlmRequest | None:
    """Find the :class:`LlmRequest` among a call's arguments, if there is one."""
    for value in args:
        if isinstance(value, LlmRequest):
            return value
    for value in kwargs.values():
        if isinstance(value, LlmRequest):
            return value
    return None
