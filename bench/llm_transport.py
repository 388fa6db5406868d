"""LLM call path costs: the resilient transport per request, and the fallback path once the
breaker is open.

    .venv/bin/python -m bench.llm_transport [--calls 5000] [--rounds 7] [--samples 5000]

1. Transport overhead: the same ``AsyncClient.post`` against an in-process mock upstream,
   bare vs through ``ResilientAsyncTransport`` (empty pipeline; the standard transport stack
   total timeout -> retry -> breaker -> attempt timeout), for httpx2 and httpx, measured in
   the same run (shuffled rounds, paired differences) and reported as a ratio; and the whole
   openai SDK call, bare client vs ``resilient_async_openai``.
2. Streams, per chunk: iterating parsed ``ChatCompletionChunk`` objects (as the SDK yields
   them) through ``open_stream`` with the default ``StreamPolicy`` and the tracker
   ``ResilientOpenAI`` uses (completion + usage metering), against the plain async generator
   and against that generator under an ``asyncio.timeout`` per chunk (the obvious way to
   bound the silence between chunks).
3. Open-breaker fallback latency: ``ResilientOpenAI`` over the standard LLM pipeline with the
   breaker isolated, answered from the stale cache, by a canned reply, and by an alternate
   deployment; per-call p50/p99/max (target: p99 <= 2 ms in process).

Not run by the tests. Numbers vary by machine: compare the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import httpx2
import openai
from openai.types.chat import ChatCompletionChunk

from bench import _callgrind
from bench._harness import RunFn, Variant, measure, print_rows, summary, version
from netra_resilience import PipelineBuilder, ResilienceContext, use_context
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitBreakerStrategy
from netra_resilience.integrations.aiocache import AiocacheBackend
from netra_resilience.integrations.http import httpx as nhttpx
from netra_resilience.integrations.http import httpx2 as nhttpx2
from netra_resilience.integrations.openai import (
    ResilientOpenAI,
    canned_reply,
    openai_alternate,
    resilient_async_openai,
)
from netra_resilience.llm import (
    LLM_BREAKER_FAILURE,
    TRANSIENT_LLM_FAILURE,
    MeteredTracker,
    StreamPolicy,
    open_stream,
    tracker_for,
)
from netra_resilience.llm._presets import standard_llm_pipeline
from netra_resilience.pipeline import Pipeline
from netra_resilience.retry import RetryOptions
from netra_resilience.timeout import TimeoutOptions

COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-x",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "4"}}
    ],
}
BODY = json.dumps(COMPLETION).encode()
MESSAGES: list[Any] = [{"role": "user", "content": "What is 2+2?"}]
URL = "http://llm.bench/v1/chat/completions"


def transport_pipeline(name: str = "llm") -> Pipeline:
    return (
        PipelineBuilder(name)
        .add_timeout(TimeoutOptions(timeout=150.0))
        .add_retry(RetryOptions(max_attempts=3, should_handle=TRANSIENT_LLM_FAILURE))
        .add_circuit_breaker(
            CircuitBreakerOptions(sampling_duration=120.0, should_handle=LLM_BREAKER_FAILURE)
        )
        .add_timeout(TimeoutOptions(timeout=60.0))
        .build()
    )


def _ok2(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=BODY)


def _ok1(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=BODY)


def post_loop(client: Any) -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            await client.post(URL, content=b'{"q":1}')

    return run


def client_variant(
    name: str, group: str, make: Callable[[], Any], library: str = "netra"
) -> Variant:
    async def build() -> RunFn:
        return post_loop(make())

    return Variant(name, group, build, library=library)


def sdk_variant(name: str, make: Callable[[], openai.AsyncOpenAI]) -> Variant:
    async def build() -> RunFn:
        client = make()

        async def run(n: int) -> None:
            for _ in range(n):
                await client.chat.completions.create(model="gpt-x", messages=MESSAGES)

        return run

    return Variant(name, "openai", build, library=f"openai {version('openai')}")


def transport_variants() -> tuple[list[Variant], dict[str, str]]:
    h2 = f"httpx2 {version('httpx2')}"
    h1 = f"httpx {version('httpx')}"
    empty2 = PipelineBuilder("empty").build()
    empty1 = PipelineBuilder("empty").build()
    variants = [
        client_variant(
            "httpx2 bare MockTransport",
            "httpx2",
            lambda: httpx2.AsyncClient(transport=httpx2.MockTransport(_ok2)),
            h2,
        ),
        client_variant(
            "httpx2 resilient, empty pipeline",
            "httpx2",
            lambda: httpx2.AsyncClient(
                transport=nhttpx2.ResilientAsyncTransport(httpx2.MockTransport(_ok2), empty2)
            ),
        ),
        client_variant(
            "httpx2 resilient, standard transport stack",
            "httpx2",
            lambda: httpx2.AsyncClient(
                transport=nhttpx2.ResilientAsyncTransport(
                    httpx2.MockTransport(_ok2), transport_pipeline()
                )
            ),
        ),
        client_variant(
            "httpx bare MockTransport",
            "httpx",
            lambda: httpx.AsyncClient(transport=httpx.MockTransport(_ok1)),
            h1,
        ),
        client_variant(
            "httpx resilient, standard transport stack",
            "httpx",
            lambda: httpx.AsyncClient(
                transport=nhttpx.ResilientAsyncTransport(
                    httpx.MockTransport(_ok1), transport_pipeline()
                )
            ),
        ),
        client_variant(
            "httpx resilient, empty pipeline",
            "httpx",
            lambda: httpx.AsyncClient(
                transport=nhttpx.ResilientAsyncTransport(httpx.MockTransport(_ok1), empty1)
            ),
        ),
        sdk_variant(
            "AsyncOpenAI bare (max_retries=0)",
            lambda: openai.AsyncOpenAI(
                api_key="sk-bench",
                base_url="http://llm.bench/v1",
                max_retries=0,
                http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_ok2)),
            ),
        ),
        sdk_variant(
            "resilient_async_openai (standard stack)",
            lambda: resilient_async_openai(
                transport_pipeline(),
                inner_transport=httpx2.MockTransport(_ok2),
                api_key="sk-bench",
                base_url="http://llm.bench/v1",
            ),
        ),
    ]
    baselines = {
        "httpx2": "httpx2 bare MockTransport",
        "httpx": "httpx bare MockTransport",
        "openai": "AsyncOpenAI bare (max_retries=0)",
    }
    return variants, baselines


# -- streams, per chunk --------------------------------------------------------------------
def _chunk(content: str | None, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        }
    )


TOKEN = _chunk("tok")
LAST = _chunk(None, "stop")


async def _chunks(n: int) -> Any:
    for _ in range(n - 1):
        yield TOKEN
    yield LAST


def _plain_stream() -> RunFn:
    async def run(n: int) -> None:
        async for _ in _chunks(n):
            pass

    return run


def _timeout_per_chunk() -> RunFn:
    async def run(n: int) -> None:
        iterator = _chunks(n).__aiter__()
        while True:
            try:
                async with asyncio.timeout(30.0):
                    await iterator.__anext__()
            except StopAsyncIteration:
                return

    return run


def _resilient_stream() -> RunFn:
    policy = StreamPolicy()  # the default: 30 s to the first token, 30 s idle

    async def run(n: int) -> None:
        async def start() -> Any:
            return _chunks(n)

        stream = await open_stream(
            start, policy=policy, tracker=MeteredTracker(tracker_for("chat"))
        )
        async for _ in stream:
            pass
        assert stream.completed

    return run


def stream_variants() -> list[Variant]:
    def variant(name: str, make: Callable[[], RunFn], library: str = "netra") -> Variant:
        async def build() -> RunFn:
            return make()

        return Variant(name, "stream", build, library=library)

    return [
        variant("plain async generator", _plain_stream, "baseline"),
        variant("asyncio.timeout per chunk", _timeout_per_chunk, "asyncio"),
        variant("ResilientStream, default policy", _resilient_stream),
    ]


STREAM_CHUNKS_PER_CALL = 20  # chunks per timed stream for each --calls


async def stream_rows(calls: int, rounds: int) -> None:
    chunks = calls * STREAM_CHUNKS_PER_CALL
    rows = await measure(
        stream_variants(),
        {"stream": "plain async generator"},
        calls=chunks,
        rounds=rounds,
        warmup=min(2_000, chunks),
    )
    print_rows(
        f"Streams, per chunk ({chunks} chunks per stream; extra ns over the generator)", rows
    )
    by = {r.name: r for r in rows}
    ours = by["ResilientStream, default policy"]
    floor = by["asyncio.timeout per chunk"]
    summary(
        "resilient stream per chunk, default policy (extra us over a plain async generator)",
        f"{ours.overhead_ns / 1000:.2f} us",
        f"asyncio.timeout per chunk {floor.overhead_ns / 1000:.2f} us",
        ours.overhead_ns / floor.overhead_ns if floor.overhead_ns > 0 else None,
    )


def stream_instructions(chunks: int) -> None:
    """The stream variants under callgrind: instructions per chunk (load-independent)."""
    if not _callgrind.available():
        print("\ninstructions per chunk: not counted (no valgrind; apt-get install valgrind)")
        return
    counts = _callgrind.count_in_child("bench.llm_transport", ["--instruction-chunks", str(chunks)])
    plain = counts["plain async generator"]
    print(f"\nStreams under callgrind: instructions per chunk ({chunks} + {2 * chunks} chunks)")
    for name, value in counts.items():
        print(f"{name:<46} {value:>9,.0f} ({value - plain:+,.0f} over the generator)")
    ours = counts["ResilientStream, default policy"] - plain
    floor = counts["asyncio.timeout per chunk"] - plain
    summary(
        "resilient stream per chunk, default policy (extra instructions over a plain generator)",
        f"{ours:,.0f} instr",
        f"asyncio.timeout per chunk {floor:,.0f} instr",
        ours / floor if floor > 0 else None,
    )


# -- open-breaker fallback path ------------------------------------------------------------
def _down(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(503, json={"error": {"message": "down"}})


def _sdk(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url="http://llm.bench/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


async def open_breaker_scenarios() -> dict[str, Callable[[], Awaitable[Any]]]:
    """Each scenario: a ResilientOpenAI whose primary breaker is isolated (fails fast)."""
    scenarios: dict[str, Callable[[], Awaitable[Any]]] = {}

    async def isolated(pipeline: Pipeline) -> None:
        breaker = pipeline.find(CircuitBreakerStrategy)
        assert breaker is not None
        await breaker.isolate()

    stale = standard_llm_pipeline(cache=AiocacheBackend())
    llm = ResilientOpenAI(_sdk(_ok2), stale)
    ctx = ResilienceContext("bench", user_id="u")
    with use_context(ctx):
        await llm.chat.completions.create(model="gpt-x", messages=MESSAGES)  # fills the cache
    await isolated(stale)
    scenarios["stale cache (breaker open)"] = _scoped(llm)

    canned = standard_llm_pipeline(canned_reply=canned_reply("busy, retry shortly"))
    await isolated(canned)
    scenarios["canned reply (breaker open)"] = _scoped(ResilientOpenAI(_sdk(_down), canned))

    alt = openai_alternate("backup", _sdk(_ok2), model="gpt-mini")
    chain = standard_llm_pipeline(alternates=[alt])
    await isolated(chain)
    scenarios["alternate deployment (breaker open)"] = _scoped(ResilientOpenAI(_sdk(_down), chain))
    return scenarios


def _scoped(llm: ResilientOpenAI) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        with use_context(ResilienceContext("bench", user_id="u")):
            return await llm.chat.completions.create(model="gpt-x", messages=MESSAGES)

    return call


async def latencies(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    for _ in range(min(500, samples)):
        await call()
    out: list[float] = []
    gc.collect()
    for _ in range(samples):
        start = time.perf_counter_ns()
        await call()
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(
    calls: int, rounds: int, samples: int, instructions: bool = False, instruction_chunks: int = 0
) -> None:
    print(f"Python {sys.version.split()[0]} on {platform.machine()} ({platform.system()})")
    variants, baselines = transport_variants()
    rows = await measure(variants, baselines, calls=calls, rounds=rounds, warmup=min(500, calls))
    print_rows("Resilient transport vs bare transport (same run)", rows)
    print(f"\n{'variant':<46} {'ratio to bare':>14} {'extra us/req':>13}")
    by_name = {r.name: r for r in rows}
    for r in sorted(rows, key=lambda r: (r.group, r.median_ns)):
        base = by_name[r.baseline]
        ratio = r.median_ns / base.median_ns
        print(f"{r.name:<46} {ratio:>14.2f} {r.overhead_ns / 1000:>13.1f}")
        if r is not base and "standard" in r.name:
            summary(
                f"{r.name} (us per request, in-process mock upstream)",
                f"{r.median_ns / 1000:.1f} us",
                f"{base.name} {base.median_ns / 1000:.1f} us",
                ratio,
            )

    await stream_rows(calls, rounds)
    if instructions:
        stream_instructions(instruction_chunks)

    print("\nFallback path with the primary breaker open (ResilientOpenAI, standard pipeline)")
    header = f"{'scenario':<40} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99<=2ms':>9}"
    print(header)
    print("-" * len(header))
    for name, call in (await open_breaker_scenarios()).items():
        values = await latencies(call, samples)
        p99 = pct(values, 0.99)
        print(
            f"{name:<40} {statistics.median(values):>8.3f} {p99:>8.3f} "
            f"{max(values):>8.3f} {'yes' if p99 <= 2.0 else 'NO':>9}"
        )
        summary(f"{name}: p99 latency", f"{p99:.3f} ms", "target 2 ms", p99 / 2.0)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--samples", type=int, default=5_000)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    parser.add_argument("--instruction-chunks", type=int, default=2_000)
    args = parser.parse_args(argv)
    if _callgrind.in_child():
        asyncio.run(_callgrind.count_variants(stream_variants(), args.instruction_chunks))
        return
    asyncio.run(
        main(args.calls, args.rounds, args.samples, args.instructions, args.instruction_chunks)
    )


if __name__ == "__main__":
    cli()
