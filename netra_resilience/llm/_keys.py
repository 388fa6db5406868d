"""LLM cache keys over every parameter that changes the answer (a deny-list, not an allow-list).

Gateways keep shipping keys that miss a field (LiteLLM #894/#42400, OrcaRouter-Lite#84 ...):
an allow-list silently serves an answer produced under other settings as soon as a provider
grows a parameter. Here every parameter is part of the key except the few that provably do not
change what the model says (timeouts, transport headers, end-user tracking, storage flags).
The caller's scope (tenant/user) is added by the cache strategy, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from netra_resilience.cache import stable_key
from netra_resilience.context import ResilienceContext
from netra_resilience.llm._request import request_of

NON_OUTPUT_PARAMS = frozenset(
    {
        "timeout",
        "extra_headers",  # transport headers (may hold credentials): never in a key
        "idempotency_key",
        "user",  # end-user id for abuse tracking; isolation comes from the context's scope
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "metadata",
        "store",
        "service_tier",
    }
)
"""Parameters left out of the key: they never change the generated answer."""

_FLOAT_PARAMS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})

LlmCacheKey = Callable[[ResilienceContext, tuple[Any, ...], dict[str, Any]], str | None]


def _is_sentinel(value: Any) -> bool:
    # openai's NOT_GIVEN / omit (and their look-alikes in other Stainless SDKs): not sent.
    return type(value).__name__ in ("NotGiven", "Omit") and not value


def normalize_params(params: Mapping[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    """Drop ignored parameters and unsent sentinels; make equal numbers hash equal."""
    skip = frozenset(ignore)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in skip or _is_sentinel(value):
            continue
        if name in _FLOAT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            out[name] = float(value)  # temperature=1 and temperature=1.0 answer alike
        else:
            out[name] = value
    return out


def make_llm_cache_key(
    *, ignore: Iterable[str] = NON_OUTPUT_PARAMS, cache_streams: bool = False
) -> LlmCacheKey:
    """A ``CacheOptions.key`` for LLM calls.

    The call's :class:`LlmRequest` (or, for a plain ``pipeline.execute(create, **params)``, its
    keyword arguments) is normalised and hashed with its API kind. Streaming requests bypass
    the cache unless ``cache_streams`` (a stream is not a value that can be stored).
    """
    skip = frozenset(ignore)

    def key(
        context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        request = request_of(args, kwargs)
        kind, params = ("call", kwargs) if request is None else (request.kind, request.params)
        if not cache_streams and params.get("stream"):
            return None
        return f"{kind}:{stable_key(kind, normalize_params(params, skip))}"

    return key


llm_cache_key: LlmCacheKey = make_llm_cache_key()
"""The default LLM cache key (see :func:`make_llm_cache_key`)."""
