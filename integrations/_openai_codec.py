"""A JSON-safe codec for cached openai answers (caches that serialise, e.g. over Redis)."""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletion
from openai.types.responses import Response


def encode_answer(value: Any) -> Any:
    """JSON-safe form of a cached answer (for ``AiocacheBackend(encode=...)`` over Redis)."""
    if isinstance(value, ChatCompletion):
        return {"kind": "chat", "data": value.model_dump(mode="json")}
    if isinstance(value, Response):
        return {"kind": "responses", "data": value.model_dump(mode="json")}
    return {"kind": "raw", "data": value}


def decode_answer(data: Any) -> Any:
    """Inverse of :func:`encode_answer`."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "chat":
        return ChatCompletion.construct(**data["data"])
    if kind == "responses":
        return Response.construct(**data["data"])
    return data.get("data") if isinstance(data, dict) else data
