"""The LLM cache key covers every argument and the caller: a property test over random calls.

Any change of any positional or keyword argument, or of the caller scope, changes the key; and
through the LLM preset a stale answer is only ever the answer to the same call of the same
caller, for every way the preset can be called.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from netra_resilience import ResilienceContext, standard_llm_pipeline
from netra_resilience.cache import CacheStrategy, InMemoryTTLCache
from netra_resilience.llm import LlmRequest, llm_cache_key
from netra_resilience.testing import FakeClock, advance_until_done

VALUES: list[Any] = ["What is my balance?", "Close my account?", 0, 1, 2.5, None, True, [1]]
VALUES.append({"a": 1})


def random_call(rng: random.Random) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(rng.choice(VALUES) for _ in range(rng.randint(0, 3)))
    kwargs = {name: rng.choice(VALUES) for name in rng.sample(["q", "model", "temperature"], 2)}
    return args, kwargs


def mutate(rng: random.Random, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The same call with exactly one argument changed (or added)."""
    positional, kwargs = list(args), dict(kwargs)
    if positional and rng.random() < 0.5:
        i = rng.randrange(len(positional))
        positional[i] = rng.choice([v for v in VALUES if repr(v) != repr(positional[i])])
    elif rng.random() < 0.5:
        name = rng.choice(sorted(kwargs))
        kwargs[name] = rng.choice([v for v in VALUES if repr(v) != repr(kwargs[name])])
    else:
        positional.append("extra")
    return tuple(positional), kwargs


def test_any_changed_argument_or_caller_changes_the_key() -> None:
    rng = random.Random(20261207)
    alice = ResilienceContext("chat", user_id="alice")
    pipeline = standard_llm_pipeline("llm", cache=InMemoryTTLCache(), clock=FakeClock())
    cache = pipeline.find(CacheStrategy)
    assert cache is not None
    for _ in range(2000):
        args, kwargs = random_call(rng)
        if kwargs.get("stream"):
            continue
        key = cache.key_for(alice, args, kwargs)
        assert key is not None
        assert cache.key_for(ResilienceContext("chat", user_id="alice"), args, kwargs) == key
        assert cache.key_for(ResilienceContext("chat", user_id="bob"), args, kwargs) != key
        assert cache.key_for(ResilienceContext("chat", tenant_id="t", user_id="alice"),
                             args, kwargs) != key
        changed_args, changed_kwargs = mutate(rng, args, kwargs)
        assert cache.key_for(alice, changed_args, changed_kwargs) != key, (args, kwargs)


def test_positional_calls_no_longer_share_one_entry() -> None:
    context = ResilienceContext("chat", user_id="u")
    one = llm_cache_key(context, ("What is my balance?",), {})
    two = llm_cache_key(context, ("Close my account?",), {})
    assert one != two
    request = LlmRequest("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert llm_cache_key(context, (request,), {}) != llm_cache_key(context, (), {"model": "m"})


@pytest.mark.parametrize("style", ["positional", "keyword", "request"])
async def test_a_stale_answer_is_the_answer_to_the_same_call_of_the_same_caller(
    style: str,
) -> None:
    clock = FakeClock()
    pipeline = standard_llm_pipeline("llm", clock=clock, cache=InMemoryTTLCache(clock=clock))
    down = False

    async def ask(question: Any = None, **params: Any) -> str:
        if down:
            raise ConnectionError("provider down")
        value = question if question is not None else params.get("q")
        if isinstance(value, LlmRequest):
            value = value.params["q"]
        return f"answer to {value}"

    def call(question: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if style == "positional":
            return (question,), {}
        if style == "keyword":
            return (), {"q": question}
        return (LlmRequest("chat", {"q": question}),), {}

    questions = ["What is my balance?", "Close my account?"]
    alice = ResilienceContext("chat", user_id="alice")
    args, kwargs = call(questions[0])
    first = await pipeline.execute(ask, *args, context=alice, **kwargs)
    assert first == f"answer to {questions[0]}"
    down = True
    for question in questions:
        for user in ("alice", "bob"):
            context = ResilienceContext("chat", user_id=user)
            args, kwargs = call(question)
            try:
                answer = await advance_until_done(
                    clock, pipeline.execute(ask, *args, context=context, **kwargs)
                )
            except Exception:
                continue  # no stale answer for this call and caller: a failure, not a wrong one
            assert (question, user) == (questions[0], "alice"), (question, user, answer)
            assert answer == f"answer to {questions[0]}"
            assert context.degradation.reason("llm") == "stale_cache"
