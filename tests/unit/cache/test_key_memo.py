"""LLM cache keys cost what changed: long strings hashed once (by value), containers walked
every call, so a dict or list a caller mutates and sends again never keeps an old key."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pytest
from pydantic import BaseModel

from netra_resilience import ResilienceContext
from netra_resilience.cache import LONG_TEXT, CacheStrategy, KeyEncoder, canonical_text
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.llm import LlmRequest, llm_cache_key, make_llm_cache_key
from netra_resilience.runtime import Resilience

CONTEXT = ResilienceContext("chat", user_id="u1")
HISTORY = "You are a careful assistant. " * 40  # a long system prompt (> LONG_TEXT)


def key_of(key: object, params: Mapping[str, object]) -> str:
    assert callable(key)
    found = key(CONTEXT, (LlmRequest("chat", params),), {})
    assert isinstance(found, str)
    return found


def test_a_mutated_messages_list_or_message_dict_changes_the_key_and_back() -> None:
    key = make_llm_cache_key()
    messages = [{"role": "system", "content": HISTORY}, {"role": "user", "content": "hi"}]
    params: dict[str, object] = {"model": "m", "messages": messages}
    first = key_of(key, params)
    assert key_of(key, params) == first
    messages[1]["content"] = "hello"  # the same dict object, mutated in place
    changed = key_of(key, params)
    assert changed != first
    messages.append({"role": "assistant", "content": "hey"})
    grown = key_of(key, params)
    assert grown not in (first, changed)
    messages[0]["content"] = HISTORY + "!"  # one more character in the long prompt
    assert key_of(key, params) not in (first, changed, grown)
    messages.pop()
    messages[0]["content"] = HISTORY
    messages[1]["content"] = "hi"
    assert key_of(key, params) == first  # what it holds decides, not which object it is


def test_equal_long_strings_share_a_key_whatever_object_holds_them() -> None:
    key = make_llm_cache_key()
    rebuilt = "".join(list(HISTORY))  # equal text, another str object
    assert rebuilt is not HISTORY
    one = key_of(key, {"model": "m", "messages": [{"role": "system", "content": HISTORY}]})
    two = key_of(key, {"model": "m", "messages": [{"role": "system", "content": rebuilt}]})
    assert one == two
    # The shared default (no memo) writes the same text: keys agree across processes.
    same = {"model": "m", "messages": [{"role": "system", "content": HISTORY}]}
    assert key_of(llm_cache_key, same) == one


def test_a_long_string_and_its_digest_written_as_text_get_different_keys() -> None:
    key = make_llm_cache_key()
    token = "#" + hashlib.sha256(HISTORY.encode()).hexdigest()
    long_one = key_of(key, {"model": "m", "messages": [{"content": HISTORY}]})
    assert token in long_one  # the long string entered as its digest
    assert key_of(key, {"model": "m", "messages": [{"content": token}]}) != long_one
    assert HISTORY not in long_one


def test_short_requests_keep_the_canonical_json_text() -> None:
    params = {
        "model": "m",
        "temperature": 1,
        "messages": [{"role": "user", "content": "hé"}],
        "user": "ignored",
        "n": None,
        "stop": ("a", "b"),
        "seed": 3,
        "logprobs": True,
    }
    text = key_of(make_llm_cache_key(), params)
    expected = {k: v for k, v in params.items() if k != "user"}
    expected["temperature"] = 1.0
    assert text == canonical_text("chat", expected)


class Part(BaseModel):
    type: str
    text: str


def test_models_sets_and_odd_keys_are_walked_like_canonical_json() -> None:
    encoder = KeyEncoder()
    values = [Part(type="text", text="hi"), {"b", "a"}, {1: "x"}, b"\x00", float("nan"), 2.5]
    assert encoder.text(*values) == canonical_text(*values)
    long_part = Part(type="text", text=HISTORY)
    assert encoder.text(long_part) != encoder.text(Part(type="text", text=HISTORY + "."))


def test_memo_is_bounded_and_can_be_off() -> None:
    encoder = KeyEncoder(max_chars=3 * LONG_TEXT)
    texts = [chr(65 + i) * LONG_TEXT for i in range(10)]
    digests = [encoder.text(t) for t in texts]
    assert encoder.remembered_chars <= 3 * LONG_TEXT
    assert [encoder.text(t) for t in texts] == digests  # forgotten ones are hashed again
    off = KeyEncoder(max_chars=0)
    assert off.text(texts[0]) == digests[0]
    assert off.remembered_chars == 0
    with pytest.raises(InvalidOptionsError, match="max_chars"):
        KeyEncoder(max_chars=-1)


def test_the_preset_gives_each_pipeline_a_key_of_its_own() -> None:
    runtime = Resilience()
    one = runtime.llm().find(CacheStrategy)
    two = runtime.llm(name="other").find(CacheStrategy)
    assert one is not None and two is not None
    assert one._key is not llm_cache_key and one._key is not two._key
    request = LlmRequest("chat", {"model": "m", "messages": [{"content": HISTORY}]})
    assert one.key_for(CONTEXT, (request,), {}) is not None
