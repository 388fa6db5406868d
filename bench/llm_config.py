"""The README app's LLM configuration, per successful call, and what it is made of.

    .venv/bin/python -m bench.llm_config [--calls 20000] [--rounds 7]

``resilience.llm(canned_reply=canned_reply("Busy, retry."))`` (total and attempt timeouts,
retry honouring Retry-After, breaker, per-caller in-memory stale-answer cache, canned reply)
around a provider call that returns at once, in a bound request context with a caller (so
the cache keys, writes and answer filter all run), against the bare provider call; the same
without a caller (cache bypassed) and with ``cache=None``; tenacity's ``@retry`` alone as the
peer reference. Then the parts: the cache key (``CacheStrategy.key_for``), a write + read of
``InMemoryTTLCache`` against cachetools' ``TTLCache``, and the memory 100,000 entries hold in
each. Every ratio is netra / reference in the same run (above 1 = netra costs more).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import hashlib
import os
import platform
import sys
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from openai.types.chat import ChatCompletion

from bench import _callgrind
from bench._harness import Row, RunFn, Variant, measure, print_rows, summary, version
from netra_resilience import Resilience, ResilienceContext, use_context
from netra_resilience.cache import CacheEntry, CacheStrategy, InMemoryTTLCache
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.integrations.openai import canned_reply
from netra_resilience.llm import LlmRequest
from netra_resilience.pipeline import Pipeline

MESSAGES = [{"role": "user", "content": "What is 2 + 2? Answer with one digit."}]
REQUEST = LlmRequest("chat", {"model": "gpt-4o-mini", "messages": MESSAGES})
# What the provider returns, as the openai SDK gives it (the answer filter and the limiter's
# hint read it); the cache stores it by reference in process.
ANSWER = ChatCompletion.model_validate(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "4"}}
        ],
    }
)


async def provider(request: LlmRequest) -> object:
    return ANSWER


def _readme_pipeline(**options: Any) -> Pipeline:
    return Resilience().llm(canned_reply=canned_reply("Busy, retry."), **options)


def _calls(pipeline: Pipeline, context: ResilienceContext | None) -> RunFn:
    execute = pipeline.execute

    async def run(n: int) -> None:
        if context is None:
            for _ in range(n):
                await execute(provider, REQUEST)
            return
        with use_context(context):
            for _ in range(n):
                await execute(provider, REQUEST)

    return run


async def _bare() -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            await provider(REQUEST)

    return run


async def _readme() -> RunFn:
    return _calls(_readme_pipeline(), ResilienceContext("chat", user_id="u1"))


async def _readme_aiocache() -> RunFn:
    pipeline = _readme_pipeline(cache=AiocacheBackend())
    return _calls(pipeline, ResilienceContext("chat", user_id="u1"))


async def _anonymous() -> RunFn:
    return _calls(_readme_pipeline(), ResilienceContext("chat"))


async def _no_cache() -> RunFn:
    return _calls(_readme_pipeline(cache=None), ResilienceContext("chat", user_id="u1"))


async def _tenacity() -> RunFn:
    import tenacity as t

    fn = t.retry(
        stop=t.stop_after_attempt(3),
        wait=t.wait_random_exponential(multiplier=0.1, max=2),
        retry=t.retry_if_exception_type(ConnectionError),
        reraise=True,
    )(provider)

    async def run(n: int) -> None:
        for _ in range(n):
            await fn(REQUEST)

    return run


async def _key() -> RunFn:
    strategy = _readme_pipeline().find(CacheStrategy)
    assert strategy is not None
    context = ResilienceContext("chat", user_id="u1")
    args = (REQUEST,)
    kwargs: dict[str, Any] = {}

    async def run(n: int) -> None:
        for _ in range(n):
            strategy.key_for(context, args, kwargs)

    return run


ENTRY = CacheEntry(ANSWER, 0.0, 1e12, 1e12)


def _prompt_request(chars: int, question: str = "") -> LlmRequest:
    history = ("x" * (chars - 1)) + "?"  # one system prompt / history of ``chars`` characters
    messages = [{"role": "system", "content": history}]
    if question:
        messages.append({"role": "user", "content": question})
    return LlmRequest("chat", {"model": "gpt-4o-mini", "messages": messages})


def _key_at(chars: int, *, rebuilt: bool = False) -> Callable[[], Awaitable[RunFn]]:
    """The key of a request whose prompt has ``chars`` characters: the same request again
    (its text remembered), or ``rebuilt``, equal text in a new string each call (a history
    read back from a database)."""

    async def build() -> RunFn:
        strategy = _readme_pipeline().find(CacheStrategy)
        assert strategy is not None
        context = ResilienceContext("chat", user_id="u1")
        request = _prompt_request(chars)
        text = request.params["messages"][0]["content"]
        kwargs: dict[str, Any] = {}

        async def run(n: int) -> None:
            key_for = strategy.key_for
            if not rebuilt:
                args = (request,)
                for _ in range(n):
                    key_for(context, args, kwargs)
                return
            for _ in range(n):
                fresh = text[:-1] + "?"  # the same characters, another str object
                messages = [{"role": "system", "content": fresh}]
                params = {"model": "gpt-4o-mini", "messages": messages}
                key_for(context, (LlmRequest("chat", params),), kwargs)

        return run

    return build


def _sha_at(chars: int) -> Callable[[], Awaitable[RunFn]]:
    """The floor: one SHA-256 over the prompt's text alone (no JSON, no scope)."""

    async def build() -> RunFn:
        text = _prompt_request(chars).params["messages"][0]["content"]

        async def run(n: int) -> None:
            sha256 = hashlib.sha256
            for _ in range(n):
                sha256(text.encode()).hexdigest()

        return run

    return build


def _rebuild_at(chars: int) -> Callable[[], Awaitable[RunFn]]:
    """What the rebuilt-prompt key row builds besides the key (subtracted by the reader)."""

    async def build() -> RunFn:
        text = _prompt_request(chars).params["messages"][0]["content"]

        async def run(n: int) -> None:
            for _ in range(n):
                fresh = text[:-1] + "?"
                messages = [{"role": "system", "content": fresh}]
                LlmRequest("chat", {"model": "gpt-4o-mini", "messages": messages})

        return run

    return build


DISTINCT = 50_000  # distinct questions cycled: more than the cache holds, so each call misses


async def _miss_write_4k() -> RunFn:
    """The preset with its in-memory cache serving fresh answers (``cache_ttl``): every call
    a miss (a new question after a 4,000-character history), then a write."""
    pipeline = Resilience().llm(cache_ttl=60.0)
    context = ResilienceContext("chat", user_id="u1")
    base = _prompt_request(4_000, "q")
    history = base.params["messages"][0]
    requests = [
        LlmRequest(
            "chat",
            {"model": "gpt-4o-mini", "messages": [history, {"role": "user", "content": f"q{i}"}]},
        )
        for i in range(DISTINCT)
    ]
    execute = pipeline.execute
    position = 0

    async def run(n: int) -> None:
        nonlocal position
        with use_context(context):
            for _ in range(n):
                await execute(provider, requests[position])
                position = (position + 1) % DISTINCT

    return run


async def _bare_4k() -> RunFn:
    requests = [_prompt_request(4_000, f"q{i}") for i in range(64)]

    async def run(n: int) -> None:
        for i in range(n):
            await provider(requests[i & 63])

    return run


async def _netra_cache() -> RunFn:
    cache = InMemoryTTLCache(max_entries=10_000)

    async def run(n: int) -> None:
        for _ in range(n):
            await cache.set("chat:key", ENTRY, 600.0)
            await cache.get("chat:key")

    return run


async def _cachetools() -> RunFn:
    from cachetools import TTLCache

    cache: TTLCache[str, object] = TTLCache(maxsize=10_000, ttl=600)

    async def run(n: int) -> None:
        for _ in range(n):
            cache["chat:key"] = ENTRY
            cache.get("chat:key")

    return run


async def _empty() -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            pass

    return run


README = "README LLM config, caller bound (key + cache write + filter)"
README_AIOCACHE = "README LLM config over AiocacheBackend(), caller bound"
MISS_4K = "LLM preset, in-memory cache, miss + write, 4k-char (1k-token) prompt"
PROMPTS = (40, 4_000, 40_000)
VARIANTS = [
    Variant("bare provider call", "call", _bare, "baseline"),
    Variant(README, "call", _readme),
    Variant(README_AIOCACHE, "call", _readme_aiocache),
    Variant("README LLM config, anonymous caller (cache bypassed)", "call", _anonymous),
    Variant("README LLM config, cache=None", "call", _no_cache),
    Variant("tenacity @retry alone", "call", _tenacity, "tenacity"),
    Variant("cache key: CacheStrategy.key_for", "part", _key),
    Variant("InMemoryTTLCache set + get (awaited)", "part", _netra_cache),
    Variant("cachetools TTLCache set + get", "part", _cachetools, "cachetools"),
    Variant("empty loop", "part", _empty, "baseline"),
    *(
        Variant(f"cache key, {c:,}-char prompt, same request again", "part", _key_at(c))
        for c in PROMPTS
    ),
    *(
        Variant(
            f"cache key, {c:,}-char prompt rebuilt each call (+ building it)",
            "part",
            _key_at(c, rebuilt=True),
        )
        for c in PROMPTS
    ),
    *(Variant(f"building a {c:,}-char request", "part", _rebuild_at(c)) for c in PROMPTS),
    *(
        Variant(f"hashlib sha256 of the {c:,}-char prompt alone", "part", _sha_at(c), "hashlib")
        for c in PROMPTS
    ),
    Variant("bare provider call, 4k-char prompt", "call", _bare_4k, "baseline"),
    Variant(MISS_4K, "call", _miss_write_4k),
]


async def _memory(entries: int) -> tuple[float, float | None]:
    """Bytes per entry held by InMemoryTTLCache and by cachetools' TTLCache (same values)."""
    keys = [f"chat:{i:064x}" for i in range(entries)]
    values = [CacheEntry(i, 0.0, 1e12, 1e12) for i in range(entries)]
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    ours = InMemoryTTLCache(max_entries=entries)
    for key, value in zip(keys, values, strict=True):
        await ours.set(key, value, 600.0)
    netra = (tracemalloc.get_traced_memory()[0] - start) / entries
    tracemalloc.stop()
    del ours
    try:
        from cachetools import TTLCache
    except ImportError:
        return netra, None
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    theirs: TTLCache[str, object] = TTLCache(maxsize=entries, ttl=600)
    for key, value in zip(keys, values, strict=True):
        theirs[key] = value
    peer = (tracemalloc.get_traced_memory()[0] - start) / entries
    tracemalloc.stop()
    return netra, peer


async def main_async(args: argparse.Namespace) -> list[Row]:
    baselines = {"call": "bare provider call", "part": "empty loop"}
    rows = await measure(VARIANTS, baselines, calls=args.calls, rounds=args.rounds, warmup=500)
    print(
        f"Python {sys.version.split()[0]} on {platform.platform()}, {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds x {args.calls} calls; {dt.date.today()}; "
        f"tenacity {version('tenacity')}, cachetools {version('cachetools')}"
    )
    print_rows(
        "LLM CALL (extra ns over the bare provider call)", [r for r in rows if r.group == "call"]
    )
    print_rows("PARTS (extra ns over an empty loop)", [r for r in rows if r.group == "part"])
    by = {r.name: r for r in rows}
    mine = by[README]
    peer = by.get("tenacity @retry alone")
    summary(
        "README app's LLM config per successful call (extra us) vs a peer's retry alone",
        f"{mine.overhead_ns / 1000:.2f} us",
        f"tenacity @retry {peer.overhead_ns / 1000:.2f} us" if peer else "tenacity not installed",
        mine.overhead_ns / peer.overhead_ns if peer else None,
    )
    ours = by["InMemoryTTLCache set + get (awaited)"]
    theirs = by.get("cachetools TTLCache set + get")
    summary(
        "cache write + read (extra us)",
        f"{ours.overhead_ns / 1000:.2f} us",
        f"cachetools TTLCache {theirs.overhead_ns / 1000:.2f} us" if theirs else "-",
        ours.overhead_ns / theirs.overhead_ns if theirs else None,
    )
    key = by["cache key: CacheStrategy.key_for"]
    summary("LLM cache key per call (extra us)", f"{key.overhead_ns / 1000:.2f} us", "-", None)
    for chars in PROMPTS:
        floor = by[f"hashlib sha256 of the {chars:,}-char prompt alone"].overhead_ns
        same = by[f"cache key, {chars:,}-char prompt, same request again"].overhead_ns
        built = by[f"building a {chars:,}-char request"].overhead_ns
        rebuilt = by[f"cache key, {chars:,}-char prompt rebuilt each call (+ building it)"]
        fresh = rebuilt.overhead_ns - built
        summary(
            f"LLM cache key, {chars:,}-char prompt, same request again (extra us)",
            f"{same / 1000:.2f} us",
            f"sha256 of the prompt alone {floor / 1000:.2f} us",
            same / floor if floor > 0 else None,
        )
        summary(
            f"LLM cache key, {chars:,}-char prompt as a new equal string (extra us)",
            f"{fresh / 1000:.2f} us",
            f"sha256 of the prompt alone {floor / 1000:.2f} us",
            fresh / floor if floor > 0 else None,
        )
    miss = by[MISS_4K]
    bare4k = by["bare provider call, 4k-char prompt"]
    summary(
        "LLM preset + in-memory cache, miss + write, 4k-char prompt (extra us over the call)",
        f"{(miss.median_ns - bare4k.median_ns) / 1000:.2f} us",
        "target <= 8 us",
        None,
    )
    if args.instructions:
        _instructions(args.instruction_calls)
    netra_bytes, peer_bytes = await _memory(args.entries)
    print(f"\nMEMORY, {args.entries:,} entries: InMemoryTTLCache {netra_bytes:.0f} B/entry", end="")
    print(f", cachetools TTLCache {peer_bytes:.0f} B/entry" if peer_bytes else "")
    summary(
        f"memory held by {args.entries:,} cache entries (B per entry)",
        f"{netra_bytes:.0f} B",
        f"cachetools TTLCache {peer_bytes:.0f} B" if peer_bytes else "-",
        netra_bytes / peer_bytes if peer_bytes else None,
    )
    return rows


INSTRUCTION_BASELINES = {"call": "bare provider call", "part": "empty loop"}


def _instructions(calls: int) -> None:
    """The same variants under callgrind: instructions per call over the group's baseline
    (load-independent; the wall-time rows above are inflated by whatever else runs)."""
    if not _callgrind.available():
        print("\ninstructions per call: not counted (no valgrind; apt-get install valgrind)")
        return
    counts = _callgrind.count_in_child("bench.llm_config", ["--instruction-calls", str(calls)])
    print(f"\nINSTRUCTIONS per call (callgrind, {calls} + {2 * calls} calls, extra over baseline)")
    extra = {}
    for variant in VARIANTS:
        if variant.name in counts:
            base = counts[INSTRUCTION_BASELINES[variant.group]]
            extra[variant.name] = counts[variant.name] - base
            print(f"{variant.name:<72} {extra[variant.name]:>10,.0f}")
    tenacity = extra.get("tenacity @retry alone")
    for name, label in (
        (README, "README app's LLM config per successful call (extra instructions)"),
        (README_AIOCACHE, "README LLM config over AiocacheBackend() per call (extra instructions)"),
    ):
        summary(
            label,
            f"{extra[name]:,.0f} instr",
            f"tenacity @retry {tenacity:,.0f} instr" if tenacity else "tenacity not installed",
            extra[name] / tenacity if tenacity else None,
        )
    no_cache = extra["README LLM config, cache=None"]
    summary(
        "README LLM config per call (extra instructions) vs the same preset with cache=None",
        f"{extra[README]:,.0f} instr",
        f"cache=None {no_cache:,.0f} instr",
        extra[README] / no_cache,
    )
    miss = counts[MISS_4K] - counts["bare provider call, 4k-char prompt"]
    summary(
        "LLM preset + in-memory cache, miss + write, 4k-char prompt (extra instructions)",
        f"{miss:,.0f} instr",
        f"cache=None README config {no_cache:,.0f} instr",
        miss / no_cache,
    )
    for chars in PROMPTS:
        floor = extra[f"hashlib sha256 of the {chars:,}-char prompt alone"]
        same = extra[f"cache key, {chars:,}-char prompt, same request again"]
        fresh = (
            extra[f"cache key, {chars:,}-char prompt rebuilt each call (+ building it)"]
            - extra[f"building a {chars:,}-char request"]
        )
        for what, value in (("same request again", same), ("as a new equal string", fresh)):
            summary(
                f"LLM cache key, {chars:,}-char prompt, {what} (extra instructions)",
                f"{value:,.0f} instr",
                f"sha256 of the prompt alone {floor:,.0f} instr",
                value / floor if floor > 0 else None,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    parser.add_argument("--instruction-calls", type=int, default=300)
    args = parser.parse_args(argv)
    if _callgrind.in_child():
        asyncio.run(_callgrind.count_variants(VARIANTS, args.instruction_calls))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
