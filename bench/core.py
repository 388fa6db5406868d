"""Core overhead: each strategy alone, the standard LLM stack, and open-breaker rejection,
against tenacity, stamina, backoff, hyx, aiobreaker, purgatory, pybreaker, circuitbreaker,
aiolimiter and the stdlib in the same run (the method of shared/anchors/bench_peers.py).

    .venv/bin/python -m bench.core [--calls 20000] [--rounds 7] [--instructions]
    .venv/bin/python -m bench.core --instructions-only     # callgrind only (~1 min)

Prints ns per call and the paired extra cost over a bare ``await ok()`` (or a bare
raise+except for the open-breaker group) for every variant, then one comparison per subject:
netra's extra cost divided by the cheapest peer's extra cost for the same job, measured in
the same rounds (above 1 = netra costs more). Absolute figures are for this machine only;
nothing is scaled to another machine. ``--instructions`` also counts the instructions per
call of the limiter, breaker, open-rejection and README-pipeline rows and their peers under
callgrind (load-independent; valgrind needed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any, cast

from bench._harness import (
    Row,
    RunFn,
    Variant,
    measure,
    print_rows,
    retained_bytes_per_call,
    summary,
    version,
)
from netra_resilience import BrokenCircuitError, PipelineBuilder, ResilienceContext, use_context
from netra_resilience.bulkhead import BulkheadOptions
from netra_resilience.chaos import ChaosControl, ChaosOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.fallback import FallbackOptions
from netra_resilience.rate_limiter import RateLimiterOptions, TokenBucketLimiter
from netra_resilience.retry import RetryOptions
from netra_resilience.timeout import TimeoutOptions


async def ok() -> int:
    return 1


async def fail() -> int:
    raise ConnectionError("down")


def loop_call(fn: Callable[[], Awaitable[Any]]) -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            await fn()

    return run


def loop_reject(fn: Callable[[], Awaitable[Any]], exc: type[BaseException]) -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            try:
                await fn()
            except exc:
                pass

    return run


def pipeline_call(builder: PipelineBuilder, fn: Callable[[], Awaitable[Any]] = ok) -> RunFn:
    pipeline = builder.build()
    execute = pipeline.execute

    async def run(n: int) -> None:
        for _ in range(n):
            await execute(fn)

    return run


def standard_stack() -> PipelineBuilder:
    """rate limiter -> bulkhead -> total timeout -> retry -> breaker -> attempt timeout."""
    return (
        PipelineBuilder("llm")
        .add_rate_limiter(RateLimiterOptions(limiter=TokenBucketLimiter(rate=1e9, burst=10**9)))
        .add_bulkhead(BulkheadOptions(max_concurrency=100, max_queue=100))
        .add_timeout(TimeoutOptions(timeout=30))
        .add_retry(RetryOptions(max_attempts=3, delay=0.1))
        .add_circuit_breaker(CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=10))
        .add_timeout(TimeoutOptions(timeout=10))
    )


VARIANTS: list[Variant] = []


def variant(name: str, group: str, library: str = "netra") -> Callable[[Any], Any]:
    def deco(build: Callable[[], Awaitable[RunFn]]) -> Callable[[], Awaitable[RunFn]]:
        VARIANTS.append(Variant(name, group, build, library))
        return build

    return deco


# -- baselines ---------------------------------------------------------------------
@variant("bare await ok()", "success", "baseline")
async def _bare() -> RunFn:
    return loop_call(ok)


@variant("bare raise+except", "open", "baseline")
async def _bare_raise() -> RunFn:
    return loop_reject(fail, ConnectionError)


# -- netra, each strategy alone ----------------------------------------------------------
@variant("netra empty pipeline", "success")
async def _empty() -> RunFn:
    return pipeline_call(PipelineBuilder("x"))


@variant("netra timeout", "success")
async def _timeout() -> RunFn:
    return pipeline_call(PipelineBuilder("x").add_timeout(TimeoutOptions(timeout=30)))


@variant("netra retry", "success")
async def _retry() -> RunFn:
    return pipeline_call(PipelineBuilder("x").add_retry(RetryOptions(max_attempts=3)))


@variant("netra circuit breaker (time window)", "success")
async def _breaker() -> RunFn:
    return pipeline_call(PipelineBuilder("x").add_circuit_breaker(CircuitBreakerOptions()))


@variant("netra circuit breaker (count window)", "success")
async def _breaker_count() -> RunFn:
    options = CircuitBreakerOptions(window="count", window_size=100)
    return pipeline_call(PipelineBuilder("x").add_circuit_breaker(options))


@variant("netra rate limiter", "success")
async def _limiter() -> RunFn:
    limiter = TokenBucketLimiter(rate=1e9, burst=10**9)
    return pipeline_call(PipelineBuilder("x").add_rate_limiter(RateLimiterOptions(limiter=limiter)))


@variant("netra bulkhead", "success")
async def _bulkhead() -> RunFn:
    return pipeline_call(PipelineBuilder("x").add_bulkhead(BulkheadOptions(max_concurrency=100)))


@variant("netra fallback", "success")
async def _fallback() -> RunFn:
    return pipeline_call(PipelineBuilder("x").add_fallback(FallbackOptions(action=lambda _a: 0)))


@variant("netra chaos (off)", "success")
async def _chaos() -> RunFn:
    return pipeline_call(PipelineBuilder("x").add_chaos(ChaosOptions(control=ChaosControl())))


def readme_pipeline() -> PipelineBuilder:
    """The README's pipeline: limiter -> total timeout -> retry -> breaker -> attempt timeout."""
    return (
        PipelineBuilder("llm")
        .add_rate_limiter(RateLimiterOptions(limiter=TokenBucketLimiter(rate=1e9, burst=10**9)))
        .add_timeout(20)
        .add_retry(max_attempts=3, delay=0.5, should_handle=(ConnectionError, TimeoutError))
        .add_circuit_breaker(failure_ratio=0.5, minimum_throughput=10)
        .add_timeout(5)
    )


class _FloorState:
    """What the hand-fused floor keeps: a GCRA bucket, a breaker flag and counters."""

    __slots__ = ("empty_at", "failures", "open_until", "successes")

    def __init__(self) -> None:
        self.empty_at = -math.inf
        self.open_until = 0.0
        self.failures = 0
        self.successes = 0


def hand_fused_floor() -> Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]:
    """The README pipeline's job written by hand as one coroutine, the least a library can do:
    one clock read, a token-bucket check, a total deadline, a retry loop, a breaker flag and
    counter, one loop timer per attempt (``call_at`` + ``cancel``)."""
    monotonic = time.monotonic
    interval, burst_time = 1e-9, 1.0
    state = _FloorState()

    async def call(fn: Callable[[], Awaitable[Any]]) -> Any:
        now = monotonic()
        base = state.empty_at
        if base < now - burst_time:
            base = now - burst_time
        if base + interval > now:
            raise RuntimeError("rate limited")
        state.empty_at = base + interval
        deadline = now + 20.0
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        attempt = 0
        while True:
            if state.open_until > now:
                raise RuntimeError("circuit open")
            handle = loop.call_at(min(now + 5.0, deadline), task.cancel)
            try:
                result = await fn()
            except (ConnectionError, TimeoutError):
                state.failures += 1
                attempt += 1
                if attempt == 3:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
                now = monotonic()
                continue
            finally:
                handle.cancel()
            state.successes += 1
            return result

    return call


def hand_fused_floor_keyed() -> Callable[
    [_FloorState, Callable[[], Awaitable[Any]]], Awaitable[Any]
]:
    """The per-key floor: a key's state is one slotted object (a plain dict of them: no LRU,
    no bound), the call does the README pipeline's per-key work by hand (a token bucket, a
    breaker flag and counters, a retry loop) and no timer (the timers are the same for one
    key or many): the least memory a per-key pipeline can touch per call."""
    monotonic = time.monotonic
    interval, burst_time = 1e-9, 1.0

    async def call(state: _FloorState, fn: Callable[[], Awaitable[Any]]) -> Any:
        now = monotonic()
        base = state.empty_at
        if base < now - burst_time:
            base = now - burst_time
        if base + interval > now:
            raise RuntimeError("rate limited")
        state.empty_at = base + interval
        attempt = 0
        while True:
            if state.open_until > now:
                raise RuntimeError("circuit open")
            try:
                result = await fn()
            except (ConnectionError, TimeoutError):
                state.failures += 1
                attempt += 1
                if attempt == 3:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
                now = monotonic()
                continue
            state.successes += 1
            return result

    return call


@variant("netra README pipeline", "success")
async def _readme() -> RunFn:
    return pipeline_call(readme_pipeline())


@variant("hand-fused floor (README pipeline's job)", "success", "floor")
async def _floor() -> RunFn:
    call = hand_fused_floor()

    async def run(n: int) -> None:
        for _ in range(n):
            await call(ok)

    return run


@variant("netra standard LLM stack", "success")
async def _stack() -> RunFn:
    return pipeline_call(standard_stack())


@variant("netra standard LLM stack, in a request context", "success")
async def _stack_bound() -> RunFn:
    """As under the ASGI middleware: one context bound for the request, reused by the call."""
    pipeline = standard_stack().build()
    execute = pipeline.execute

    async def run(n: int) -> None:
        with use_context(ResilienceContext("request")):
            for _ in range(n):
                await execute(ok)

    return run


# -- peers -----------------------------------------------------------------------------
@variant("tenacity @retry", "success", "tenacity")
async def _tenacity() -> RunFn:
    import tenacity as t

    fn = t.retry(
        stop=t.stop_after_attempt(3),
        wait=t.wait_random_exponential(multiplier=0.1, max=2),
        retry=t.retry_if_exception_type(ConnectionError),
        reraise=True,
    )(ok)
    return loop_call(fn)


@variant("stamina @retry", "success", "stamina")
async def _stamina() -> RunFn:
    import stamina

    return loop_call(stamina.retry(on=ConnectionError, attempts=3)(ok))


@variant("backoff @on_exception", "success", "backoff")
async def _backoff() -> RunFn:
    import backoff

    return loop_call(backoff.on_exception(backoff.expo, ConnectionError, max_tries=3)(ok))


@variant("aiobreaker @breaker", "success", "aiobreaker")
async def _aiobreaker() -> RunFn:
    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=dt.timedelta(seconds=60))
    return loop_call(breaker(ok))


@variant("purgatory held breaker ctx", "success", "purgatory")
async def _purgatory() -> RunFn:
    from purgatory import AsyncCircuitBreakerFactory

    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    await factory.initialize()
    brk = await factory.get_breaker("svc_ok")

    async def run(n: int) -> None:
        for _ in range(n):
            async with brk:
                await ok()

    return run


@variant("pybreaker calling() ctx", "success", "pybreaker")
async def _pybreaker() -> RunFn:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    async def run(n: int) -> None:
        for _ in range(n):
            with breaker.calling():
                await ok()

    return run


@variant("circuitbreaker @circuit", "success", "circuitbreaker")
async def _circuitbreaker() -> RunFn:
    from circuitbreaker import CircuitBreaker

    cb = CircuitBreaker(failure_threshold=5, recovery_timeout=30, name="bench_ok")
    return loop_call(cb(ok))


@variant("aiolimiter async with", "success", "aiolimiter")
async def _aiolimiter() -> RunFn:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(1e9, 1)

    async def run(n: int) -> None:
        for _ in range(n):
            async with limiter:
                await ok()

    return run


@variant("asyncio.timeout ctx (stdlib)", "success", "stdlib")
async def _std_timeout() -> RunFn:
    async def run(n: int) -> None:
        for _ in range(n):
            async with asyncio.timeout(30):
                await ok()

    return run


@variant("hyx @retry", "success", "hyx")
async def _hyx_retry() -> RunFn:
    from hyx.retry import retry

    return loop_call(retry(on=ConnectionError, attempts=3, backoff=0.5)(ok))


def _hyx_breaker(recovery: float, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    from hyx.circuitbreaker import consecutive_breaker

    breaker = consecutive_breaker(
        exceptions=ConnectionError,
        failure_threshold=5,
        recovery_time_secs=recovery,
        recovery_threshold=3,
    )
    wrapped: Callable[[], Awaitable[Any]] = breaker(cast(Any, fn))
    return wrapped


@variant("hyx @consecutive_breaker", "success", "hyx")
async def _hyx_breaker_ok() -> RunFn:
    return loop_call(_hyx_breaker(30, ok))


@variant("hyx @bulkhead", "success", "hyx")
async def _hyx_bulkhead() -> RunFn:
    from hyx.bulkhead import bulkhead

    return loop_call(bulkhead(max_concurrency=100, max_capacity=1000)(ok))


@variant("hyx @timeout", "success", "hyx")
async def _hyx_timeout() -> RunFn:
    from hyx.timeout import timeout

    return loop_call(timeout(30)(ok))


@variant("hyx @tokenbucket", "success", "hyx")
async def _hyx_tokenbucket() -> RunFn:
    from hyx.ratelimit import tokenbucket

    return loop_call(tokenbucket(max_executions=1e9, per_time_secs=1)(ok))


@variant("asyncio.Semaphore ctx (stdlib)", "success", "stdlib")
async def _std_semaphore() -> RunFn:
    semaphore = asyncio.Semaphore(100)

    async def run(n: int) -> None:
        for _ in range(n):
            async with semaphore:
                await ok()

    return run


# -- open breaker: fast-fail rejection --------------------------------------------------
async def open_netra_breaker() -> RunFn:
    options = CircuitBreakerOptions(
        minimum_throughput=2, break_duration=3600, max_break_duration=3600
    )
    pipeline = PipelineBuilder("x").add_circuit_breaker(options).build()
    for _ in range(5):
        try:
            await pipeline.execute(fail)
        except (ConnectionError, BrokenCircuitError):
            pass
    return loop_reject(lambda: pipeline.execute(fail), BrokenCircuitError)


@variant("netra breaker OPEN reject", "open")
async def _netra_open() -> RunFn:
    return await open_netra_breaker()


async def open_purgatory() -> RunFn:
    from purgatory import AsyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=3600)
    await factory.initialize()
    fn = factory("svc_open")(fail)
    for _ in range(5):
        try:
            await fn()
        except ConnectionError:
            pass
    return loop_reject(fn, OpenedState)


@variant("purgatory OPEN reject", "open", "purgatory")
async def _purgatory_open() -> RunFn:
    return await open_purgatory()


@variant("aiobreaker OPEN reject", "open", "aiobreaker")
async def _aiobreaker_open() -> RunFn:
    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=dt.timedelta(hours=1))
    fn = breaker(fail)
    breaker.open()
    return loop_reject(fn, aiobreaker.CircuitBreakerError)


@variant("pybreaker OPEN reject", "open", "pybreaker")
async def _pybreaker_open() -> RunFn:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)
    breaker.open()

    async def call() -> int:
        with breaker.calling():
            return await fail()

    return loop_reject(call, pybreaker.CircuitBreakerError)


@variant("circuitbreaker OPEN reject", "open", "circuitbreaker")
async def _circuitbreaker_open() -> RunFn:
    from circuitbreaker import CircuitBreaker, CircuitBreakerError

    cb = CircuitBreaker(failure_threshold=5, recovery_timeout=3600, name="bench_open")
    fn = cb(fail)
    for _ in range(5):
        try:
            await fn()
        except ConnectionError:
            pass
    return loop_reject(fn, CircuitBreakerError)


@variant("hyx OPEN reject", "open", "hyx")
async def _hyx_open() -> RunFn:
    from hyx.circuitbreaker.exceptions import BreakerFailing

    fn = _hyx_breaker(3600, fail)
    for _ in range(5):
        try:
            await fn()
        except ConnectionError:
            pass
    return loop_reject(fn, BreakerFailing)


# -- per-key pipelines ----------------------------------------------------------------------
async def _per_call_ns(calls: int, rounds: int, call: Callable[[int], Awaitable[Any]]) -> float:
    best = math.inf
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for i in range(calls):
                await call(i)
            best = min(best, (time.perf_counter_ns() - start) / calls)
        finally:
            gc.enable()
    return best


def _bytes_per(make: Callable[[int], Any], count: int) -> tuple[float, list[Any]]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make(i) for i in range(count)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return max(after - before, 0) / count, kept


async def _purgatory_per_key(names: list[str]) -> Callable[[str], Awaitable[Any]] | None:
    """purgatory's ``get_breaker`` with a breaker made for every name, or None (no peer)."""
    try:
        from purgatory import AsyncCircuitBreakerFactory
    except ImportError:
        return None
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    await factory.initialize()
    for name in names:
        await factory.get_breaker(name)
    get_breaker: Callable[[str], Awaitable[Any]] = factory.get_breaker
    return get_breaker


def per_user_pipeline() -> PipelineBuilder:
    """The README pipeline with a bucket of each key's own (``rate=``/``burst=``): per-user
    limits, the usual reason for per-key pipelines."""
    return (
        PipelineBuilder("llm")
        .add_rate_limiter(rate=1e9, burst=10**9)
        .add_timeout(20)
        .add_retry(max_attempts=3, delay=0.5, should_handle=(ConnectionError, TimeoutError))
        .add_circuit_breaker(failure_ratio=0.5, minimum_throughput=10)
        .add_timeout(5)
    )


async def per_key(keys: int, calls: int, rounds: int) -> None:
    """The README pipeline per key (``build_keyed``, each key its own bucket and breaker):
    build cost and memory per key, and the per-call cost through ``get(key)`` with ``keys``
    keys in use against one key (and against a plain pipeline), for two key sequences (every
    call another key; Zipf), each also run through the per-key floor
    (:func:`hand_fused_floor_keyed`, a dict of slotted states) and purgatory's per-key
    breakers (``get_breaker(key)``) with the same keys: with every call on a cold key no
    design stays near its 1-key cost (the floor's own ratio is printed next to netra's);
    purgatory is also the peer for the memory and build cost."""
    names = [f"user-{i}" for i in range(keys)]
    keyed = per_user_pipeline().build_keyed(max_keys=keys)
    start = time.perf_counter_ns()
    for name in names:
        keyed.get(name)
    build_us = (time.perf_counter_ns() - start) / keys / 1000
    sample = min(keys, 5_000)
    other = per_user_pipeline().build_keyed(max_keys=sample)
    kept_bytes, _ = _bytes_per(lambda i: other.get(f"m-{i}"), sample)
    shared = readme_pipeline().build_keyed(max_keys=sample)  # one limiter for every key
    shared_bytes, _ = _bytes_per(lambda i: shared.get(f"m-{i}"), sample)
    single_keyed = per_user_pipeline().build_keyed(max_keys=keys)
    plain = per_user_pipeline().build().execute
    floor_states = {name: _FloorState() for name in names}
    floor_call = hand_fused_floor_keyed()
    # Two key sequences, the same for netra, the floor and the peer: every call a different
    # key (stride over all keys: each call touches a cold key's memory, the worst case), and
    # a skewed one (Zipf s=1 over all keys, seeded: a few keys take most calls, as users do).
    stride = [names[(i * 7919) % keys] for i in range(calls)]
    rng = random.Random(1)
    weights = [1 / (rank + 1) for rank in range(keys)]
    zipf = rng.choices(names, weights=weights, k=calls)
    first = names[0]
    one = [first] * calls
    get = keyed.get
    get_single = single_keyed.get

    async def plain_call(_i: int) -> Any:
        return await plain(ok)

    def netra_over(seq: list[str], via: Callable[[str], Any]) -> Callable[[int], Awaitable[Any]]:
        async def call(i: int) -> Any:
            return await via(seq[i]).execute(ok)

        return call

    def floor_over(seq: list[str]) -> Callable[[int], Awaitable[Any]]:
        async def call(i: int) -> Any:
            return await floor_call(floor_states[seq[i]], ok)

        return call

    variants: dict[str, Callable[[int], Awaitable[Any]]] = {
        "plain": plain_call,
        "netra 1": netra_over(one, get_single),
        "netra stride": netra_over(stride, get),
        "netra zipf": netra_over(zipf, get),
        "floor 1": floor_over(one),
        "floor stride": floor_over(stride),
        "floor zipf": floor_over(zipf),
    }
    peer = await _purgatory_per_key(names)
    if peer is not None:
        get_breaker = peer

        def purgatory_over(seq: list[str]) -> Callable[[int], Awaitable[Any]]:
            async def call(i: int) -> Any:
                async with await get_breaker(seq[i]):
                    return await ok()

            return call

        variants.update(
            {
                "purgatory 1": purgatory_over([names[0]] * calls),
                "purgatory stride": purgatory_over(stride),
                "purgatory zipf": purgatory_over(zipf),
            }
        )
    # Alternating rounds: the machine's load changes alike for all.
    best = dict.fromkeys(variants, math.inf)
    for _ in range(rounds):
        for label, call in variants.items():
            best[label] = min(best[label], await _per_call_ns(calls, 1, call))
    print(
        "  per call (ns, best of rounds): "
        + ", ".join(f"{label} {ns:.0f}" for label, ns in best.items())
    )
    single = best["netra 1"]
    for seq, what in (("stride", "every call another key"), ("zipf", "Zipf s=1 keys")):
        spread = best[f"netra {seq}"]
        floor_ratio = best[f"floor {seq}"] / best["floor 1"]
        summary(
            f"per-key pipelines (README pipeline): per call through get(key), {keys} keys "
            f"({what}) vs 1 key",
            f"{spread / 1000:.2f} us",
            f"1 key {single / 1000:.2f} us (floor: {floor_ratio:.2f}x)",
            spread / single,
        )
        summary(
            f"per-key pipelines (README pipeline): per call, {keys} keys ({what}) vs a "
            "dict of per-key states with the pipeline's job fused by hand, same keys",
            f"{spread / 1000:.2f} us",
            f"floor {best[f'floor {seq}'] / 1000:.2f} us",
            spread / best[f"floor {seq}"],
        )
        if peer is not None:
            summary(
                f"per-key pipelines: per call {keys} keys ({what}) over 1 key, netra vs "
                "purgatory's get_breaker(key) (a breaker alone)",
                f"{spread / single:.2f}x",
                f"purgatory {best[f'purgatory {seq}'] / best['purgatory 1']:.2f}x",
                (spread / single) / (best[f"purgatory {seq}"] / best["purgatory 1"]),
            )
    summary(
        "per-key pipelines (README pipeline): per call through get(key), 1 key vs a "
        "plain pipeline's execute",
        f"{single / 1000:.2f} us",
        f"plain {best['plain'] / 1000:.2f} us",
        single / best["plain"],
    )
    summary(
        "per-key pipelines: memory per key, one limiter shared by the keys (README pipeline)",
        f"{shared_bytes:.0f} B",
        f"own bucket {kept_bytes:.0f} B",
        shared_bytes / kept_bytes if kept_bytes else None,
    )
    try:
        from purgatory import AsyncCircuitBreakerFactory
    except ImportError:
        summary("per-key pipelines: memory per key", f"{kept_bytes:.0f} B", "no peer", None)
        summary("per-key pipelines: build per key", f"{build_us:.1f} us", "no peer", None)
        return
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    await factory.initialize()
    start = time.perf_counter_ns()
    for name in names[:sample]:
        await factory.get_breaker(name)
    peer_us = (time.perf_counter_ns() - start) / sample / 1000
    peer_factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    await peer_factory.initialize()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(sample):
        await peer_factory.get_breaker(f"m-{i}")
    gc.collect()
    peer_bytes = max(tracemalloc.get_traced_memory()[0] - before, 0) / sample
    tracemalloc.stop()
    summary(
        "per-key pipelines: memory per key (README pipeline, own bucket, vs a purgatory breaker)",
        f"{kept_bytes:.0f} B",
        f"purgatory {peer_bytes:.0f} B",
        kept_bytes / peer_bytes if peer_bytes else None,
    )
    summary(
        "per-key pipelines: build per key (README pipeline, own bucket, vs a purgatory breaker)",
        f"{build_us:.1f} us",
        f"purgatory {peer_us:.1f} us",
        build_us / peer_us if peer_us else None,
    )


PEERS = (
    "tenacity",
    "stamina",
    "backoff",
    "aiobreaker",
    "purgatory",
    "pybreaker",
    "circuitbreaker",
    "aiolimiter",
    "hyx",
)


STACK = "netra standard LLM stack"
BREAKER_PEERS = (
    "purgatory held breaker ctx",
    "circuitbreaker @circuit",
    "aiobreaker @breaker",
    "pybreaker calling() ctx",
    "hyx @consecutive_breaker",
)
# (subject, netra variant, peers doing the same job); the summary names the cheapest peer.
COMPARISONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("retry alone", "netra retry",
     ("tenacity @retry", "stamina @retry", "backoff @on_exception", "hyx @retry")),
    ("circuit breaker alone, time window (default)", "netra circuit breaker (time window)",
     BREAKER_PEERS),
    ("circuit breaker alone, count window", "netra circuit breaker (count window)",
     BREAKER_PEERS),
    ("rate limiter alone", "netra rate limiter", ("aiolimiter async with", "hyx @tokenbucket")),
    ("timeout alone", "netra timeout", ("asyncio.timeout ctx (stdlib)", "hyx @timeout")),
    ("bulkhead alone", "netra bulkhead",
     ("asyncio.Semaphore ctx (stdlib)", "hyx @bulkhead")),
    ("open-breaker rejection (over a bare raise)", "netra breaker OPEN reject",
     ("purgatory OPEN reject", "circuitbreaker OPEN reject", "aiobreaker OPEN reject",
      "pybreaker OPEN reject", "hyx OPEN reject")),
    ("README pipeline (5 strategies) vs the same job fused by hand", "netra README pipeline",
     ("hand-fused floor (README pipeline's job)",)),
    ("README pipeline (5 strategies) vs tenacity's retry alone", "netra README pipeline",
     ("tenacity @retry",)),
    ("standard LLM stack (6 strategies) vs a peer's retry alone", STACK,
     ("tenacity @retry", "stamina @retry")),
    ("standard LLM stack in a bound request context vs a peer's retry alone",
     "netra standard LLM stack, in a request context", ("tenacity @retry", "stamina @retry")),
]  # fmt: skip


def compare(subject: str, by: dict[str, Row], mine: str, peers: tuple[str, ...]) -> None:
    """netra's extra cost over the cheapest peer present (bench.run's table reads it)."""
    netra = by[mine].overhead_ns
    present = [by[p] for p in peers if p in by]
    if not present:
        summary(subject, f"{netra / 1000:.2f} us", "no peer installed", None)
        return
    best = min(present, key=lambda r: r.overhead_ns)
    ratio = netra / best.overhead_ns if best.overhead_ns > 0 else None
    summary(
        subject, f"{netra / 1000:.2f} us", f"{best.name} {best.overhead_ns / 1000:.2f} us", ratio
    )


async def main_async(args: argparse.Namespace) -> list[Row]:
    baselines = {"success": "bare await ok()", "open": "bare raise+except"}
    warmup = min(2_000, args.calls)
    rows = await measure(VARIANTS, baselines, calls=args.calls, rounds=args.rounds, warmup=warmup)
    print(
        f"Python {sys.version.split()[0]} on {platform.platform()}, {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds x {args.calls} calls; {dt.date.today()}"
    )
    print("peers: " + ", ".join(f"{p} {version(p)}" for p in PEERS))
    print_rows(
        "SUCCESS PATH (extra ns over bare `await ok()`)", [r for r in rows if r.group == "success"]
    )
    print_rows(
        "BREAKER OPEN: rejection (extra ns over a bare raise+except)",
        [r for r in rows if r.group == "open"],
    )
    by = {r.name: r for r in rows}
    print("\nCOMPARISONS: extra us per call; ratio = netra / cheapest peer (>1: netra costs more)")
    for subject, mine, peers in COMPARISONS:
        compare(subject, by, mine, peers)
    kept = min(5_000, 10 * args.calls)
    print(f"\nMEMORY KEPT PER REJECTION WHILE OPEN (tracemalloc, {kept} rejections)")
    netra_kept = await retained_bytes_per_call(await open_netra_breaker(), kept)
    print(f"  netra breaker: {netra_kept:.1f} B")
    try:
        peer_kept = await retained_bytes_per_call(await open_purgatory(), kept)
        print(f"  purgatory:     {peer_kept:.1f} B")
        summary(
            "open-breaker rejection: memory kept per rejection",
            f"{netra_kept:.1f} B",
            f"purgatory {peer_kept:.1f} B",
            netra_kept / peer_kept if peer_kept else None,
        )
    except ImportError:
        print("  purgatory:     not installed")
    keys = args.keys if args.keys is not None else min(100_000, 20 * args.calls)
    print(f"\nPER-KEY PIPELINES ({keys} keys)")
    await per_key(keys, args.calls, args.rounds)
    return rows


# -- instructions per call (callgrind): the same variants, counted instead of timed ----------
# (subject, netra variant, its baseline, peers doing the same job)
INSTRUCTION_SUBJECTS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("rate limiter alone", "netra rate limiter", "bare await ok()",
     ("hyx @tokenbucket", "aiolimiter async with")),
    ("circuit breaker alone, time window (default)", "netra circuit breaker (time window)",
     "bare await ok()", ("purgatory held breaker ctx", "circuitbreaker @circuit")),
    ("open-breaker rejection (over a bare raise)", "netra breaker OPEN reject",
     "bare raise+except", ("circuitbreaker OPEN reject", "purgatory OPEN reject")),
    ("README pipeline (5 strategies) vs the same job fused by hand", "netra README pipeline",
     "bare await ok()", ("hand-fused floor (README pipeline's job)",)),
]  # fmt: skip


async def _count_child(calls: int) -> None:
    """Under callgrind: each variant's ``calls`` and ``3 * calls`` calls, between two marker
    calls: ``oct()`` zeroes the counters (``--zero-before=builtin_oct``), ``bin()`` dumps them
    (``--dump-before=builtin_bin``); neither is called anywhere else while counting."""
    by = {v.name: v for v in VARIANTS}
    for name in _instruction_names():
        v = by[name]
        try:
            run = await v.build()
        except ImportError:
            print(f"MISSING\t{name}", flush=True)
            continue
        await run(min(calls, 2_000))  # warm: the adaptive interpreter specialises the code
        for n in (calls, 3 * calls):
            oct(n)
            await run(n)
            bin(n)
        print(f"COUNTED\t{name}", flush=True)


def _instruction_names() -> list[str]:
    names: list[str] = []
    for _, mine, base, peers in INSTRUCTION_SUBJECTS:
        for name in (base, mine, *peers):
            if name not in names:
                names.append(name)
    return names


def instructions(calls: int) -> None:
    """Instructions per call under ``valgrind --tool=callgrind`` (user space, this process
    only): the difference between ``3 * calls`` and ``calls`` calls of each variant, so what
    is done once (a loop, the exec) cancels. Unlike wall time this does not depend on the
    machine's load."""
    if shutil.which("valgrind") is None:
        print("instructions per call: not counted (no valgrind; apt-get install valgrind)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
            "--zero-before=builtin_oct", "--dump-before=builtin_bin",
            sys.executable, "-m", "bench.core", "--count-child", "--calls", str(calls),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        lines = done.stdout.splitlines()
        counted = [line.split("\t", 1)[1] for line in lines if line.startswith("COUNTED")]
        parts = sorted(
            (int(m[1]), f)
            for f in os.listdir(tmp)
            if (m := re.fullmatch(r"cg\.out\.(\d+)", f)) is not None
        )
        totals = []
        for _, f in parts:
            with open(os.path.join(tmp, f)) as dump:
                text = dump.read()
            found = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.MULTILINE)
            totals.append(int(found[1]) if found else 0)
    # The last two dumps per counted variant are ours (an import may call bin() before).
    ours = totals[len(totals) - 2 * len(counted) :]
    per_call = {
        name: (ours[2 * i + 1] - ours[2 * i]) / (2 * calls) for i, name in enumerate(counted)
    }
    print(f"\nINSTRUCTIONS PER CALL (callgrind, user space; {3 * calls} - {calls} calls)")
    for name, count in per_call.items():
        print(f"  {name:<46} {count:>9,.0f}")
    for subject, mine, base, peers in INSTRUCTION_SUBJECTS:
        if mine not in per_call or base not in per_call:
            continue
        extra = per_call[mine] - per_call[base]
        present = [(per_call[p] - per_call[base], p) for p in peers if p in per_call]
        if not present:
            summary(f"{subject}: instructions per call", f"{extra:,.0f}", "no peer", None)
            continue
        best, peer = min(present)
        summary(
            f"{subject}: extra instructions per call (callgrind)",
            f"{extra:,.0f}",
            f"{peer} {best:,.0f}",
            extra / best if best > 0 else None,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--keys", type=int, default=None, help="per-key pipelines (default: 20 x calls, <= 100k)"
    )
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    parser.add_argument(
        "--instructions-only", action="store_true", help="count instructions, no timing"
    )
    parser.add_argument("--count-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.count_child:
        asyncio.run(_count_child(args.calls))
        return
    if not args.instructions_only:
        asyncio.run(main_async(args))
    if args.instructions or args.instructions_only:
        instructions(min(args.calls, 2_000))


if __name__ == "__main__":
    main()
