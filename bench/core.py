"""Core overhead: each strategy alone, the standard LLM stack, and open-breaker rejection,
against tenacity, stamina, backoff, hyx, aiobreaker, purgatory, pybreaker, circuitbreaker,
aiolimiter and the stdlib in the same run (the method of shared/anchors/bench_peers.py).

    .venv/bin/python -m bench.core [--calls 20000] [--rounds 7]

Prints ns per call and the paired extra cost over a bare ``await ok()`` (or a bare
raise+except for the open-breaker group) for every variant, then one comparison per subject:
netra's extra cost divided by the cheapest peer's extra cost for the same job, measured in
the same rounds (above 1 = netra costs more). Absolute figures are for this machine only;
nothing is scaled to another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import math
import os
import platform
import sys
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
    keys in use against one key (and against a plain pipeline); purgatory's per-key breakers
    (``get_breaker(key)``) as the peer for the memory and build cost."""
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
    get = keyed.get
    get_single = single_keyed.get
    first = names[0]

    async def plain_call(_i: int) -> Any:
        return await plain(ok)

    async def one_key(_i: int) -> Any:
        return await get_single(first).execute(ok)

    async def many_keys(i: int) -> Any:
        return await get(names[(i * 7919) % keys]).execute(ok)

    # Alternating rounds: the machine's load changes alike for the three.
    base = single = spread = math.inf
    for _ in range(rounds):
        base = min(base, await _per_call_ns(calls, 1, plain_call))
        single = min(single, await _per_call_ns(calls, 1, one_key))
        spread = min(spread, await _per_call_ns(calls, 1, many_keys))
    summary(
        f"per-key pipelines (README pipeline): per call through get(key), {keys} keys vs 1 key",
        f"{spread / 1000:.2f} us",
        f"1 key {single / 1000:.2f} us",
        spread / single,
    )
    summary(
        f"per-key pipelines (README pipeline): per call through get(key), {keys} keys vs a "
        "plain pipeline's execute",
        f"{spread / 1000:.2f} us",
        f"plain {base / 1000:.2f} us",
        spread / base,
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--keys", type=int, default=None, help="per-key pipelines (default: 20 x calls, <= 100k)"
    )
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
