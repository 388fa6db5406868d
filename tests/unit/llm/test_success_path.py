"""The LLM success path's per-type shortcuts give the same verdicts as the generic reads:
the answer filter, the success hint's ``headers``, the cache entry, the exception-only
predicates, and flat dicts remembered in cache keys."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from netra_resilience import PipelineBuilder, ResilienceContext, use_context
from netra_resilience.cache import (
    LONG_TEXT,
    CacheEntry,
    CacheOptions,
    InMemoryTTLCache,
    KeyEncoder,
    canonical_text,
    new_entry,
)
from netra_resilience.llm import (
    LLM_BREAKER_FAILURE,
    LLM_DEPENDENCY_FAILURE,
    TRANSIENT_LLM_FAILURE,
    answer_cache_filter,
    is_complete_answer,
)
from netra_resilience.llm._request import AttributeRead
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock


def chat(content: str | None = "4", **choice: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(choice.pop("message", {}))
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message, **choice}],
    }


def answers() -> list[Any]:
    built = [
        chat(),
        chat(message={"refusal": "no"}),
        chat(finish_reason="content_filter"),
        {**chat(), "choices": []},
        {"object": "response", "status": "failed", "output": []},
        {"type": "message", "role": "assistant", "content": [{"type": "text"}]},
    ]
    models = [ChatCompletion.model_validate(a) for a in built[:3]]
    models.append(ChatCompletion.model_construct(**{**chat(), "choices": []}))
    # Malformed upstream data: a model built without its declared fields.
    models.append(ChatCompletion.model_construct(id="c"))
    no_message = chat()
    no_message["choices"][0]["message"] = None
    models.append(ChatCompletion.model_construct(**no_message))
    return [*built, *models, None, ValueError("x"), "text", 3]


def test_the_filter_agrees_with_is_complete_answer_whatever_types_alternate() -> None:
    should_cache = answer_cache_filter()
    cases = answers()
    expected = [is_complete_answer(a) for a in cases]
    assert expected[:3] == [True, False, False]
    for _ in range(2):  # types alternate: each switch re-learns its reads
        assert [should_cache(a) for a in cases] == expected
        assert [should_cache(a) for a in reversed(cases)] == expected[::-1]


def test_a_stream_is_never_cached() -> None:
    class Stream:
        def __aiter__(self) -> Stream:
            return self

    assert not answer_cache_filter()(Stream())


def test_headers_are_read_from_a_models_extras_attributes_and_nothing_else() -> None:
    read = AttributeRead("headers")
    extra = ChatCompletion.model_validate({**chat(), "headers": {"retry-after": "3"}})
    plain = ChatCompletion.model_validate(chat())

    class Response:
        headers = {"x": "1"}

    for _ in range(2):
        assert read(extra) == {"retry-after": "3"}
        assert read(plain) is None
        assert read(Response()) == {"x": "1"}
        assert read({"headers": {"x": "2"}}) is None  # a dict's items are not attributes
        assert read(None) is None


def test_the_fast_entry_is_an_equal_frozen_cache_entry() -> None:
    entry = new_entry("v", 1.0, 2.0, 3.0)
    assert type(entry) is CacheEntry
    assert entry == CacheEntry("v", 1.0, 2.0, 3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.value = "w"  # type: ignore[misc]


def test_the_llm_predicates_never_handle_a_success() -> None:
    success = Outcome(ChatCompletion.model_validate(chat()))
    for predicate in (LLM_BREAKER_FAILURE, LLM_DEPENDENCY_FAILURE, TRANSIENT_LLM_FAILURE):
        assert predicate.exceptions_only
        assert not predicate(success)
        assert not predicate(Outcome(None))


async def test_a_stale_on_that_reads_results_still_sees_successes() -> None:
    clock = FakeClock()
    answers = iter(["good", "", "later"])

    async def upstream(prompt: str) -> str:
        return next(answers)

    pipeline = (
        PipelineBuilder("p", clock=clock)
        .add_cache(
            CacheOptions(
                backend=InMemoryTTLCache(clock=clock),
                key=lambda context, args, kwargs: str(args),
                ttl=0,
                stale_ttl=60,
                should_cache=bool,
                stale_on=lambda outcome: outcome.exception is None and not outcome.result,
            )
        )
        .build()
    )
    with use_context(ResilienceContext("p", user_id="u")):
        assert await pipeline.execute(upstream, "q") == "good"
        assert await pipeline.execute(upstream, "q") == "good"  # "" answered from stale


class Role(enum.StrEnum):
    USER = "user"


def test_remembered_flat_dicts_write_what_canonical_json_writes() -> None:
    encoder = KeyEncoder()
    values: list[Any] = [
        {"role": "user", "content": "hi"},
        {"content": "hi", "role": "user"},  # another order: the same text
        {"role": Role.USER, "content": "hi"},
        {1: "x"},
        {True: "x"},  # equal to {1: "x"} as items, coerced to another key
        {"content": 1},
        {"content": "1"},
        {"content": "x" * LONG_TEXT},
        {},
    ]
    long_text = '"' + "x" * LONG_TEXT + '"'
    digest = "#" + hashlib.sha256(b"x" * LONG_TEXT).hexdigest()
    expected = [canonical_text(v).replace(long_text, "LONG") for v in values]
    for _ in range(3):  # written, then remembered
        assert [encoder.text(v).replace(digest, "LONG") for v in values] == expected
    assert encoder.text(values[0]) == encoder.text(values[1])


def test_the_memo_evicts_least_recently_used_first_within_its_budget() -> None:
    message = {"role": "user", "content": "hello there"}
    size = len(KeyEncoder().text(message)) - 2 + sum(len(k) + len(v) for k, v in message.items())
    encoder = KeyEncoder(max_chars=3 * size)
    messages = [{"role": "user", "content": f"hello {i:05d}"} for i in range(5)]
    for m in messages[:3]:
        encoder.text(m)
    assert encoder.remembered_chars == 3 * size
    encoder.text(messages[0])  # used again: now the most recent
    encoder.text(messages[3])  # evicts messages[1], the least recently used
    memo = encoder._memo
    assert tuple(messages[0].items()) in memo
    assert tuple(messages[1].items()) not in memo
    for m in messages:
        encoder.text(m)
    assert encoder.remembered_chars <= 3 * size
    assert len(memo) == 3
