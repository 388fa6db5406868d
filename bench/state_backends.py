"""Session store latency with Redis up vs Redis down (PostgreSQL fallback), and a run event
log's cost per appended event (RedisEventLog on Redis Streams vs InMemoryEventLog). Real servers
on loopback, started here. (The shared Redis rate limiter: ``bench.redis_limiter``.)

    .venv/bin/python -m bench.state_backends [--ops 2000]

Same run, same store object: Redis up, then SIGKILL (the store's Redis breaker opens, calls go to
PostgreSQL), then Redis restarted (write-back, Redis serves again). Prints median / p99 per
operation and the down/up ratio of the medians (the target is <= 2x; the origin documents
allow 5x). The PostgreSQL here runs with fsync off (a throwaway cluster): on a durable
server, fallback writes also pay the WAL flush.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench._harness import summary
from netra_resilience.engine import Event, EventLog, InMemoryEventLog
from netra_resilience.integrations.redis import (
    RedisEventLog,
    RedisSessionBackend,
    redis_breaker,
    redis_client,
)
from netra_resilience.integrations.sqlalchemy import (
    PoolBulkhead,
    SqlSessionBackend,
    create_pooled_engine,
)
from netra_resilience.sessions import SessionStore
from tests.servers import PostgresServer, RedisServer

SESSION = {"user": "u-123", "tenant": "acme", "turns": [{"role": "user", "content": "x" * 200}]}


async def _latencies(op: Callable[[int], Awaitable[object]], ops: int) -> list[float]:
    for i in range(min(200, ops)):  # warm-up: connections, prepared statements, scripts
        await op(i)
    samples = []
    for i in range(ops):
        start = time.perf_counter_ns()
        await op(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


async def _phase(store: SessionStore, ops: int) -> dict[str, list[float]]:
    async def put(i: int) -> None:
        await store.put(f"s{i % 200}", SESSION)

    async def get(i: int) -> object:
        return await store.get(f"s{i % 200}")

    return {"put": await _latencies(put, ops), "get": await _latencies(get, ops)}


async def sessions(redis: RedisServer, pg: PostgresServer, ops: int) -> list[tuple[str, ...]]:
    engine = create_pooled_engine(pg.url, pool_size=10)
    fallback = SqlSessionBackend(PoolBulkhead(engine), table="bench_sessions")
    await fallback.create_schema()
    client = redis_client(redis.url)
    store = SessionStore(RedisSessionBackend(client), fallback, retry_interval=0.2)
    await store.reconcile()
    up = await _phase(store, ops)
    redis.kill()
    with contextlib.suppress(Exception):
        for _ in range(3):  # three refusals in a row: the store's Redis breaker opens
            await store.put("trip", 1)
    down = await _phase(store, ops)
    redis.start()
    await store.reconcile()  # probes, closes the breaker, writes back
    up_again = await _phase(store, ops)
    await store.aclose()
    await client.aclose()
    await fallback.database.aclose()
    await engine.dispose()

    rows: list[tuple[str, ...]] = []
    for op in ("get", "put"):
        up_med, up_p99 = _stats(up[op] + up_again[op])
        down_med, down_p99 = _stats(down[op])
        rows.append(
            (
                f"session {op}",
                f"{up_med:.0f} / {up_p99:.0f}",
                f"{down_med:.0f} / {down_p99:.0f}",
                f"{down_med / up_med:.2f}x",
            )
        )
    return rows


async def sqlite_embedded(ops: int) -> list[tuple[str, ...]]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_pooled_engine(f"sqlite+aiosqlite:///{Path(tmp) / 's.db'}")
        backend = SqlSessionBackend(PoolBulkhead(engine))
        await backend.create_schema()
        store = SessionStore(backend)
        result = await _phase(store, ops)
        await store.aclose()
        await backend.database.aclose()
        await engine.dispose()
    return [
        (f"session {op} (SQLite only)", "-", "{:.0f} / {:.0f}".format(*_stats(result[op])), "-")
        for op in ("get", "put")
    ]


async def event_logs(redis: RedisServer, ops: int) -> tuple[float, float]:
    """Median us per appended event (a run's events in order, 20 per run), in-memory vs Redis
    Streams (one XADD script per event, the local mirror included)."""
    client = redis_client(redis.url)
    logs: dict[str, EventLog] = {
        "memory": InMemoryEventLog(max_runs=100_000),
        "redis": RedisEventLog(client, breaker=redis_breaker(client, timeout=1.0)),
    }
    medians: dict[str, float] = {}
    for name, log in logs.items():

        async def append(i: int, log: EventLog = log, name: str = name) -> object:
            run, seq = divmod(i, 20)
            event: Event = {
                "type": "agent_thinking",
                "run_id": f"{name}{run}",
                "seq": seq + 1,
                "data": {"text": "x" * 80},
            }
            return await log.append(event)

        medians[name] = statistics.median(await _latencies(append, ops * 5))
    await client.aclose()
    return medians["redis"], medians["memory"]


async def main(ops: int) -> None:
    with RedisServer() as redis, PostgresServer() as pg:
        rows = await sessions(redis, pg, ops)
        rows += await sqlite_embedded(ops)
        on_redis, in_memory = await event_logs(redis, ops)
    print(
        f"\nstate backends - {platform.python_implementation()} {platform.python_version()}, "
        f"{ops} ops per phase, latencies in us (median / p99)"
    )
    header = f"{'measure':<36} {'Redis up':>18} {'Redis down (PG)':>18} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, up, down, ratio in rows:
        print(f"{name:<36} {up:>18} {down:>18} {ratio:>7}")
        if ratio.endswith("x"):
            summary(
                f"state backends, {name}: latency median / p99 us, Redis down "
                "(PostgreSQL fallback) vs Redis up (ratio of medians)",
                f"Redis down {down} us",
                f"Redis up {up} us",
                float(ratio[:-1]),
            )
    print(f"run event log append: Redis Streams {on_redis:.1f} us, in-memory {in_memory:.1f} us")
    summary(
        "run event log: append per event, RedisEventLog (loopback Redis) vs InMemoryEventLog (us)",
        f"{on_redis:.1f} us",
        f"in-memory {in_memory:.1f} us",
        on_redis / in_memory,
    )


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    asyncio.run(main(parser.parse_args(argv).ops))


if __name__ == "__main__":
    cli()
