"""The backend key: one SHA-256 of the key text and the caller scope, no prompt in the name."""

from __future__ import annotations

import re

from netra_resilience import PipelineBuilder, ResilienceContext
from netra_resilience.cache import CacheOptions, CacheStrategy, InMemoryTTLCache
from netra_resilience.llm import LlmRequest, llm_cache_key

PROMPT = "my account number is 12345"
REQUEST = LlmRequest("chat", {"model": "m", "messages": [{"role": "user", "content": PROMPT}]})


def strategy(include_scope: bool = True) -> CacheStrategy:
    options = CacheOptions(
        backend=InMemoryTTLCache(), key=llm_cache_key, include_scope=include_scope, ttl=60
    )
    found = PipelineBuilder("llm").add_cache(options).build().find(CacheStrategy)
    assert found is not None
    return found


def key(cache: CacheStrategy, context: ResilienceContext, request: LlmRequest = REQUEST) -> str:
    found = cache.key_for(context, (request,), {})
    assert found is not None
    return found


def test_backend_key_is_a_namespaced_digest_without_the_prompt() -> None:
    found = key(strategy(), ResilienceContext("chat", user_id="u1"))
    assert re.fullmatch(r"llm:c[0-9a-f]{64}", found)
    assert PROMPT not in found


def test_same_request_same_caller_same_key_and_every_difference_changes_it() -> None:
    cache = strategy()
    u1 = ResilienceContext("chat", user_id="u1")
    assert key(cache, u1) == key(cache, ResilienceContext("other op", user_id="u1"))
    assert key(cache, u1) != key(cache, ResilienceContext("chat", user_id="u2"))
    assert key(cache, u1) != key(cache, ResilienceContext("chat", tenant_id="t", user_id="u1"))
    assert key(cache, u1) != key(cache, u1, REQUEST.with_params(model="other"))


def test_scope_and_key_text_cannot_run_into_each_other() -> None:
    """User ``a`` asking ``x|y`` and user ``a|x`` asking ``y`` get different keys."""
    options = CacheOptions(backend=InMemoryTTLCache(), key=lambda _c, a, _k: str(a[0]), ttl=60)
    cache = PipelineBuilder("llm").add_cache(options).build().find(CacheStrategy)
    assert cache is not None
    one = cache.key_for(ResilienceContext("chat", user_id="a"), ("x|y",), {})
    two = cache.key_for(ResilienceContext("chat", user_id="a|x"), ("y",), {})
    assert one != two


def test_shared_and_per_caller_keys_differ() -> None:
    context = ResilienceContext("chat", user_id="u1")
    shared = key(strategy(include_scope=False), context)
    assert re.fullmatch(r"llm:s[0-9a-f]{64}", shared)
    assert shared == key(strategy(include_scope=False), ResilienceContext("chat", user_id="u2"))
    assert shared != key(strategy(), context)
