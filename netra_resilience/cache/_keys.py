"""Cache keys: a canonical, process-independent hash, and the call's arguments from ``state``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any


def _canonical(obj: Any) -> Any:
    """JSON fallback for types ``json`` does not know; deterministic across processes."""
    if isinstance(obj, set | frozenset):
        # Set iteration order depends on per-process hash randomisation: sort canonically.
        return sorted(_dumps(item) for item in obj)
    if isinstance(obj, bytes | bytearray):
        return {"__bytes__": bytes(obj).hex()}
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):  # pydantic models (openai request/message types)
        return model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return repr(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical
    )


def stable_key(*parts: Any) -> str:
    """SHA-256 hex digest of ``parts`` as canonical JSON (sorted keys, fixed separators).

    Dict ordering never changes the key, and the key is the same in every process, so it can
    address a shared (Redis) cache. Unknown types fall back to ``repr``; give them a stable
    ``repr`` (or convert them yourself) if they are part of a key. Hashing also keeps prompts
    and other caller data out of backend key names.
    """
    return hashlib.sha256(_dumps(parts).encode("utf-8")).hexdigest()


def call_arguments(state: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The user's ``(args, kwargs)`` from a pipeline ``state`` of ``(fn, args, kwargs)``."""
    if not (isinstance(state, tuple) and len(state) == 3):
        return (), {}
    _, args, kwargs = state
    return args, kwargs
