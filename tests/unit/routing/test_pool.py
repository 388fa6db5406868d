"""EndpointPool: breakers per endpoint, all-open policy, sticky keys, selection."""

from __future__ import annotations

import contextlib

import pytest

from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitState
from netra_resilience.context import ResilienceContext
from netra_resilience.routing import (
    AllOpenPolicy,
    Endpoint,
    EndpointPool,
    EndpointPoolOptions,
    NoHealthyEndpointError,
    Selection,
)
from netra_resilience.testing import FakeClock, constant_random

URLS = ["http://a:1", "http://b:1", "http://c:1"]


def _opts(**kw: object) -> EndpointPoolOptions:
    breaker = CircuitBreakerOptions(
        failure_ratio=0.5, minimum_throughput=2, break_duration=10.0, window="count", window_size=4
    )
    return EndpointPoolOptions(breaker=breaker, evict_after_opens=None, **kw)  # type: ignore[arg-type]


class Backend:
    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[str] = []

    async def __call__(self, endpoint: Endpoint) -> str:
        self.calls.append(endpoint.host)
        if endpoint.host in self.down:
            raise ConnectionError(endpoint.host)
        return endpoint.host


async def test_failing_endpoint_opens_and_traffic_moves(clock: FakeClock) -> None:
    pool = EndpointPool("llm", URLS, options=_opts(), clock=clock)
    backend = Backend()
    backend.down.add("b")
    failures = []
    for _ in range(30):
        try:
            await pool.execute(backend)
        except ConnectionError:
            failures.append(pool.member("http://b:1").breaker.state)  # type: ignore[union-attr]
    member = pool.member("http://b:1")
    assert member is not None and member.breaker.state is CircuitState.OPEN
    assert len(failures) == 2  # exactly the calls that opened the breaker
    opened_at = backend.calls.index("b", backend.calls.index("b") + 1)
    assert "b" not in backend.calls[opened_at + 1 :]
    assert set(backend.calls[opened_at + 1 :]) == {"a", "c"}


async def test_recovered_endpoint_returns_after_half_open_probe(clock: FakeClock) -> None:
    pool = EndpointPool("llm", URLS, options=_opts(), clock=clock)
    backend = Backend()
    backend.down.add("b")
    for _ in range(6):
        with contextlib.suppress(ConnectionError):
            await pool.execute(backend)
    backend.down.clear()
    backend.calls.clear()
    await clock.advance(10.0)
    for _ in range(6):
        await pool.execute(backend)
    assert backend.calls.count("b") >= 1
    assert pool.member("http://b:1").breaker.state is CircuitState.CLOSED  # type: ignore[union-attr]


async def _open_all(pool: EndpointPool, clock: FakeClock, stagger: float) -> None:
    backend = Backend()
    backend.down.update({"a", "b", "c"})
    for _ in range(6):
        with contextlib.suppress(ConnectionError):
            await pool.execute(backend)
        await clock.advance(stagger)


async def test_all_open_rejects_with_earliest_retry_after(clock: FakeClock) -> None:
    pool = EndpointPool("llm", URLS, options=_opts(), clock=clock)
    await _open_all(pool, clock, 1.0)
    ctx = ResilienceContext("op")
    with pytest.raises(NoHealthyEndpointError) as info:
        await pool.execute(Backend(), context=ctx)
    states = [m.breaker.retry_after for m in pool.members]
    assert info.value.retry_after == min(s for s in states if s is not None)
    assert info.value.retry_after is not None and info.value.retry_after < 10.0
    assert ctx.degradation.reason("llm") == "circuit_open"


async def test_all_open_waits_up_to_bound_for_first_half_open(clock: FakeClock) -> None:
    pool = EndpointPool(
        "llm", URLS, options=_opts(when_all_open=AllOpenPolicy.WAIT, max_wait=20.0), clock=clock
    )
    await _open_all(pool, clock, 1.0)
    earliest = min(m.breaker.retry_after or 99.0 for m in pool.members)
    from netra_resilience.testing import advance_until_done

    result = await advance_until_done(clock, pool.execute(Backend()))
    assert result in {"a", "b", "c"}
    assert clock.sleeps[-1] == pytest.approx(earliest)


async def test_wait_beyond_bound_rejects(clock: FakeClock) -> None:
    pool = EndpointPool("llm", URLS, options=_opts(when_all_open="wait", max_wait=1.0), clock=clock)
    await _open_all(pool, clock, 0.0)
    with pytest.raises(NoHealthyEndpointError) as info:
        await pool.execute(Backend())
    assert info.value.retry_after == pytest.approx(10.0)
    assert clock.sleeps == []


async def test_sticky_keys_stay_while_healthy_and_move_once(clock: FakeClock) -> None:
    pool = EndpointPool("llm", URLS, options=_opts(), clock=clock)
    backend = Backend()
    homes = {}
    for user in ("u1", "u2", "u3", "u4"):
        homes[user] = await pool.execute(backend, sticky_key=user)
    for _ in range(5):
        for user, home in homes.items():
            assert await pool.execute(backend, sticky_key=user) == home
    victim_user = "u1"
    victim = homes[victim_user]
    backend.down.add(victim)
    moves = []
    for _ in range(10):
        with contextlib.suppress(ConnectionError):
            moves.append(await pool.execute(backend, sticky_key=victim_user))
    assert moves and len(set(moves)) == 1 and moves[0] != victim  # moved once, stays there
    backend.down.clear()
    await clock.advance(10.0)  # the old home recovers: the session does not bounce back
    for _ in range(5):
        assert await pool.execute(backend, sticky_key=victim_user) == moves[0]
    for user in ("u2", "u3", "u4"):
        if homes[user] != victim:
            assert await pool.execute(backend, sticky_key=user) == homes[user]


@pytest.mark.parametrize("selection", list(Selection))
async def test_every_selection_spreads_and_skips_open(
    clock: FakeClock, selection: Selection
) -> None:
    pool = EndpointPool(
        "llm", URLS, options=_opts(selection=selection), clock=clock, random=constant_random(0.4)
    )
    backend = Backend()
    backend.down.add("a")
    errors = 0
    for _ in range(40):
        try:
            await pool.execute(backend)
        except ConnectionError:
            errors += 1
    assert errors <= 2
    assert backend.calls[-10:].count("a") == 0


async def test_latency_weighted_prefers_fast_endpoint(clock: FakeClock) -> None:
    import random

    rnd = random.Random(7)
    pool = EndpointPool(
        "llm", URLS, options=_opts(selection="latency_weighted"), clock=clock, random=rnd.random
    )
    delays = {"a": 0.01, "b": 0.2, "c": 0.2}

    async def call(endpoint: Endpoint) -> str:
        await clock.sleep(delays[endpoint.host])
        return endpoint.host

    from netra_resilience.testing import advance_until_done

    picks = [await advance_until_done(clock, pool.execute(call)) for _ in range(300)]
    assert picks[-200:].count("a") > 120


async def test_least_in_flight_balances_concurrent_calls(clock: FakeClock) -> None:
    import asyncio

    pool = EndpointPool("llm", URLS, options=_opts(selection="least_in_flight"), clock=clock)
    gate = asyncio.Event()

    async def call(endpoint: Endpoint) -> str:
        await gate.wait()
        return endpoint.host

    tasks = [asyncio.create_task(pool.execute(call)) for _ in range(9)]
    await clock.settle()
    assert [m.in_flight for m in pool.members] == [3, 3, 3]
    gate.set()
    assert sorted(await asyncio.gather(*tasks)) == sorted(["a", "b", "c"] * 3)
    assert [m.in_flight for m in pool.members] == [0, 0, 0]


async def test_cancelled_call_releases_in_flight(clock: FakeClock) -> None:
    import asyncio

    pool = EndpointPool("llm", URLS, options=_opts(), clock=clock)

    async def hang(endpoint: Endpoint) -> str:
        await asyncio.Event().wait()
        return ""

    task = asyncio.create_task(pool.execute(hang))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(m.in_flight == 0 for m in pool.members)
