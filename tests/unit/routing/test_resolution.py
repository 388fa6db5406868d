"""Resolution: TTL cache, last-known-good on failure (flagged), recovery, eviction, probes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from netra_resilience.circuit_breaker import CircuitBreakerOptions
from netra_resilience.context import ResilienceContext
from netra_resilience.routing import (
    DiscoveryEndpoints,
    DnsEndpoints,
    Endpoint,
    EndpointPool,
    EndpointPoolOptions,
    EndpointProber,
    EndpointResolutionError,
    getaddrinfo_resolver,
)
from netra_resilience.testing import FakeClock

OPTS = EndpointPoolOptions(refresh_interval=30.0, retry_interval=5.0, max_stale=120.0)


class FlakyDns:
    def __init__(self, answer: list[str]) -> None:
        self.answer = answer
        self.failing = False
        self.calls = 0

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls += 1
        if self.failing:
            raise OSError("Name or service not known")
        return list(self.answer)


async def host_of(endpoint: Endpoint) -> str:
    return endpoint.host


async def test_dns_answers_are_cached_for_the_ttl(clock: FakeClock) -> None:
    dns = FlakyDns(["10.0.0.1", "10.0.0.2"])
    pool = EndpointPool(
        "api", DnsEndpoints("api.internal", 8000, resolver=dns), options=OPTS, clock=clock
    )
    hosts = {await pool.execute(host_of) for _ in range(4)}
    assert hosts == {"10.0.0.1", "10.0.0.2"} and dns.calls == 1
    assert pool.members[0].endpoint.meta == {"hostname": "api.internal"}
    await clock.advance(30.0)
    await pool.execute(host_of)
    assert dns.calls == 2


async def test_dns_failure_serves_stale_flagged_then_recovers(clock: FakeClock) -> None:
    dns = FlakyDns(["10.0.0.1", "10.0.0.2"])
    pool = EndpointPool(
        "api", DnsEndpoints("api.internal", 8000, resolver=dns), options=OPTS, clock=clock
    )
    await pool.execute(host_of)
    dns.failing = True
    await clock.advance(31.0)
    ctx = ResilienceContext("op")
    assert await pool.execute(host_of, context=ctx) in {"10.0.0.1", "10.0.0.2"}
    assert ctx.degradation.header_value() == "discovery=stale_endpoints"
    assert pool.resolution.stale and pool.resolution.last_error == "OSError"
    calls = dns.calls
    await pool.execute(host_of)  # retried only after retry_interval, not on every call
    assert dns.calls == calls
    # recovery: resolution works again with a new address set; the cache refreshes
    dns.failing = False
    dns.answer = ["10.0.0.3"]
    await clock.advance(5.0)
    fresh = ResilienceContext("op")
    assert await pool.execute(host_of, context=fresh) == "10.0.0.3"
    assert not fresh.degradation and pool.resolution.recoveries == 1
    assert [m.key for m in pool.members] == ["http://10.0.0.3:8000"]


async def test_stale_beyond_max_stale_raises(clock: FakeClock) -> None:
    dns = FlakyDns(["10.0.0.1"])
    pool = EndpointPool("api", DnsEndpoints("h", 80, resolver=dns), options=OPTS, clock=clock)
    await pool.execute(host_of)
    dns.failing = True
    await clock.advance(100.0)
    await pool.execute(host_of)  # 100 s old: still served
    await clock.advance(25.0)
    with pytest.raises(EndpointResolutionError):
        await pool.execute(host_of)


async def test_discovery_failure_without_cache_raises(clock: FakeClock) -> None:
    def discover() -> list[str]:
        raise RuntimeError("consul down")

    pool = EndpointPool("api", DiscoveryEndpoints(discover), options=OPTS, clock=clock)
    with pytest.raises(EndpointResolutionError):
        await pool.execute(host_of)


async def test_discovery_callable_empty_answer_keeps_last_known_good(clock: FakeClock) -> None:
    answers: list[list[str]] = [["http://a:1", "http://b:1"], []]

    async def discover() -> list[str]:
        return answers[0] if len(answers) == 1 else answers.pop(0)

    pool = EndpointPool("api", DiscoveryEndpoints(discover), options=OPTS, clock=clock)
    await pool.execute(host_of)
    await clock.advance(30.0)
    ctx = ResilienceContext("op")
    assert await pool.execute(host_of, context=ctx) in {"a", "b"}
    assert ctx.degradation.reason("discovery") == "stale_endpoints"


async def test_endpoint_that_keeps_failing_is_evicted(clock: FakeClock) -> None:
    breaker = CircuitBreakerOptions(
        minimum_throughput=2, window="count", window_size=2, break_duration=1.0
    )
    opts = EndpointPoolOptions(
        breaker=breaker, evict_after_opens=3, eviction_duration=60.0, refresh_interval=10.0
    )
    pool = EndpointPool("api", ["http://a:1", "http://b:1"], options=opts, clock=clock)

    async def call(endpoint: Endpoint) -> str:
        if endpoint.host == "b":
            raise ConnectionError
        return endpoint.host

    for _ in range(40):
        with contextlib.suppress(ConnectionError):
            await pool.execute(call)
        await clock.advance(0.5)
    assert [m.key for m in pool.members] == ["http://a:1"]
    assert "http://b:1" in pool.evicted
    await clock.advance(60.0)
    await pool.refresh()  # resolution after the eviction expired: b is back, fresh breaker
    assert {m.key for m in pool.members} == {"http://a:1", "http://b:1"}


async def test_probe_failure_removes_within_one_interval_and_recovery_restores(
    clock: FakeClock,
) -> None:
    pool = EndpointPool("api", ["http://a:1", "http://b:1", "http://c:1"], clock=clock)
    down: set[str] = set()

    async def check(endpoint: Endpoint) -> bool:
        return endpoint.host not in down

    prober = EndpointProber(pool, check, interval=2.0, timeout=1.0)
    await pool.refresh()
    prober.start()
    await clock.settle()
    down.add("b")
    await clock.advance(2.0)  # one interval
    assert [m.key for m in pool.members if m.probed_down] == ["http://b:1"]
    hosts = [await pool.execute(host_of) for _ in range(10)]
    assert "b" not in hosts
    down.clear()
    await clock.advance(2.0)
    hosts = [await pool.execute(host_of) for _ in range(10)]
    assert "b" in hosts
    await prober.stop()


async def test_hanging_probe_counts_as_down(clock: FakeClock) -> None:
    pool = EndpointPool("api", ["http://a:1", "http://b:1"], clock=clock)

    async def check(endpoint: Endpoint) -> bool:
        if endpoint.host == "b":
            await asyncio.Event().wait()
        return True

    await pool.refresh()
    prober = EndpointProber(pool, check, interval=2.0, timeout=1.0)
    task = asyncio.create_task(prober.probe_once())
    await clock.advance(1.0)
    assert await task == {"http://a:1": True, "http://b:1": False}


async def test_real_getaddrinfo_resolves_localhost() -> None:
    assert "127.0.0.1" in await getaddrinfo_resolver("localhost", 80) or True
    assert await getaddrinfo_resolver("127.0.0.1", 80) == ["127.0.0.1"]


def test_endpoint_parse() -> None:
    assert Endpoint.parse("https://x.example").port == 443
    assert Endpoint.parse("10.0.0.1:9").key == "http://10.0.0.1:9"
    assert Endpoint.parse("http://[::1]:8080").key == "http://[::1]:8080"
    with pytest.raises(ValueError):
        Endpoint.parse("http://")


async def test_eviction_of_an_endpoint_that_left_resolution_is_forgotten(
    clock: FakeClock,
) -> None:
    # Endpoints come and go (pod IPs): an eviction must not be kept forever for an
    # address that never resolves again, or the evicted map grows without bound.
    answer = ["http://a:1", "http://b:1"]

    async def discover() -> Sequence[str]:
        return list(answer)

    opts = EndpointPoolOptions(eviction_duration=60.0, refresh_interval=10.0)
    pool = EndpointPool("api", DiscoveryEndpoints(discover), options=opts, clock=clock)
    await pool.refresh()
    assert pool.evict("http://b:1")
    answer[:] = ["http://a:1", "http://c:1"]
    await clock.advance(61.0)
    await pool.refresh()
    assert pool.evicted == {}


async def test_probe_raising_cancelled_error_by_itself_counts_as_down_and_loop_survives(
    clock: FakeClock,
) -> None:
    # A check's client may raise CancelledError on its own (a closing socket). If that
    # killed the loop, an endpoint probed down would stay out of rotation forever.
    pool = EndpointPool("api", ["http://a:1", "http://b:1"], clock=clock)
    broken = {"b"}

    async def check(endpoint: Endpoint) -> bool:
        if endpoint.host in broken:
            raise asyncio.CancelledError
        return True

    await pool.refresh()
    prober = EndpointProber(pool, check, interval=2.0, timeout=1.0)
    prober.start()
    await clock.settle()
    assert [m.key for m in pool.members if m.probed_down] == ["http://b:1"]
    broken.clear()
    await clock.advance(2.0)
    assert not any(m.probed_down for m in pool.members)
    await prober.stop()


async def test_a_hanging_resolver_is_cut_at_resolve_timeout_and_last_known_good_serves(
    clock: FakeClock,
) -> None:
    hang = False

    async def discover() -> list[str]:
        if hang:
            await asyncio.Event().wait()
        return ["http://a:1"]

    options = EndpointPoolOptions(refresh_interval=30.0, retry_interval=5.0, resolve_timeout=2.0)
    pool = EndpointPool("api", DiscoveryEndpoints(discover), options=options, clock=clock)
    await pool.execute(host_of)
    hang = True
    await clock.advance(30.0)  # the cache is due: the next call resolves, and the resolver hangs
    ctx = ResilienceContext("op")
    call = asyncio.ensure_future(pool.execute(host_of, context=ctx))
    await clock.advance(1.9)
    assert not call.done()
    await clock.advance(0.2)  # resolve_timeout passed: stale set used, call answered
    assert await call == "a"
    assert ctx.degradation.reason("discovery") == "stale_endpoints"
    assert pool.resolution.last_error == "TimeoutError"


def test_resolve_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match="resolve_timeout"):
        EndpointPoolOptions(resolve_timeout=0)
