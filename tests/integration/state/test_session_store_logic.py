"""SessionStore routing, degradation and reconciliation on in-memory backends and a fake clock.

The same behaviour runs against real Redis and PostgreSQL in ``test_sessions_real.py``; here
every transition is driven step by step, with no real time.
"""

# Breaker state is re-read after awaits; mypy would narrow it across them.
# mypy: disable-error-code="unreachable"

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netra_resilience.circuit_breaker import BackendBreaker
from netra_resilience.context import ResilienceContext
from netra_resilience.sessions import (
    InMemorySessionBackend,
    InvalidSessionKeyError,
    SessionStore,
    SessionStoreUnavailableError,
)
from netra_resilience.testing import FakeClock, advance_until_done


class CountingBackend(InMemorySessionBackend):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        super()._check()


@pytest.fixture
def primary() -> CountingBackend:
    return CountingBackend()


@pytest.fixture
def fallback() -> InMemorySessionBackend:
    return InMemorySessionBackend()


@pytest.fixture
async def store(clock: FakeClock, primary: CountingBackend, fallback: InMemorySessionBackend):
    # One failure opens here, so each routing step below is one call (the default of three
    # consecutive failures has its own tests).
    s = SessionStore(
        primary, fallback, clock=clock, ttl=60, retry_interval=1.0, failure_threshold=1
    )
    await s.reconcile()  # the start-up check: nothing pending
    yield s
    await s.aclose()


async def recover(clock: FakeClock, store: SessionStore, primary: InMemorySessionBackend) -> None:
    """Bring the primary back and let the background probe and write-back run."""
    primary.available = True
    await clock.advance(store.primary_breaker.retry_interval)
    store.primary_breaker.allows()  # a call arriving now starts the probe
    await clock.settle()
    assert store.primary_breaker.available


async def test_put_get_delete_and_expiry_on_the_primary(
    clock: FakeClock, store: SessionStore, primary: CountingBackend
) -> None:
    await store.put("s1", {"user": "u1", "turns": [1, 2]})
    assert await store.get("s1") == {"user": "u1", "turns": [1, 2]}
    assert "s1" in primary.records
    await store.delete("s1")
    assert await store.get("s1") is None
    assert primary.records["s1"].deleted  # a tombstone, not a missing key

    await store.put("short", "x", ttl=5)
    await clock.advance(5)
    assert await store.get("short") is None
    assert await store.get("never-written") is None


async def test_outage_falls_back_marks_degradation_and_skips_the_primary(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    primary.available = False
    ctx = ResilienceContext("chat")
    await store.put("s1", {"n": 1}, context=ctx)
    assert ctx.degradation.as_dict() == {"redis": "fallback_database"}
    assert "s1" in fallback.records and store.pending
    assert not store.primary_breaker.available

    calls = primary.calls
    for _ in range(5):  # the breaker is open: no call waits on the dead primary
        assert await store.get("s1") == {"n": 1}
    assert primary.calls == calls


async def test_outage_writes_are_written_back_after_recovery(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    primary.available = False
    for i in range(20):
        await store.put(f"s{i}", {"i": i})
    await recover(clock, store, primary)
    assert not await fallback.has_pending() and not store.pending
    assert sorted(primary.records) == sorted(f"s{i}" for i in range(20))
    for i in range(20):
        assert await store.get(f"s{i}") == {"i": i}


async def test_newer_outage_write_is_served_before_write_back_finishes(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    await store.put("s", "v1")
    primary.available = False
    await store.put("s", "v2")  # only in the fallback
    primary.available = True
    await clock.advance(1.0)
    # Recovery seen, write-back not run yet: the read consults both and the newest wins.
    store._pending = True
    assert await store.get("s") == "v2"
    await store.reconcile()
    assert await store.get("s") == "v2"
    assert primary.records["s"].data == b'"v2"'


async def test_a_deletion_during_the_outage_is_not_resurrected(
    clock: FakeClock, store: SessionStore, primary: CountingBackend
) -> None:
    await store.put("s", "before")
    primary.available = False
    await store.delete("s")
    await recover(clock, store, primary)
    assert await store.get("s") is None
    assert primary.records["s"].deleted


async def test_a_write_after_recovery_beats_an_older_outage_write(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    primary.available = False
    await store.put("s", "during-outage")
    primary.available = True
    await clock.advance(1.0)
    assert store.primary_breaker.allows() is False
    await clock.settle()  # probe succeeded; the write-back task may not have run yet
    await store.put("s", "after-recovery")
    await store.reconcile()
    assert await store.get("s") == "after-recovery"
    assert not await fallback.has_pending()


async def test_expired_outage_writes_are_dropped_not_written_back(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    primary.available = False
    await store.put("short", "x", ttl=2)
    await store.put("long", "y", ttl=600)
    primary.available = True
    await clock.advance(3)
    assert (await store.reconcile()).complete
    assert not await fallback.has_pending()
    assert "short" not in primary.records and await store.get("long") == "y"


async def test_both_backends_down_raise_a_clear_error_and_mark_unavailable(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    primary.available = fallback.available = False
    ctx = ResilienceContext("chat")
    with pytest.raises(SessionStoreUnavailableError):
        await store.put("s", 1, context=ctx)
    with pytest.raises(SessionStoreUnavailableError):
        await store.get("s", context=ctx)
    assert ctx.degradation.reason("redis") == "unavailable"
    with pytest.raises(ConnectionError):
        await store.check()
    with pytest.raises(ConnectionError):
        await store.check_fallback()


async def test_health_checks(
    store: SessionStore, primary: CountingBackend, fallback: InMemorySessionBackend
) -> None:
    await store.check()
    primary.available = False
    await store.check()  # the fallback still serves
    with pytest.raises(ConnectionError):
        await store.check_primary()
    fallback.available = False
    with pytest.raises(ConnectionError):
        await store.check_fallback()


async def test_pending_rows_left_by_another_process_are_found_and_written_back(
    clock: FakeClock, primary: CountingBackend, fallback: InMemorySessionBackend
) -> None:
    other = SessionStore(primary, fallback, clock=clock)
    primary.available = False
    await other.put("from-other", "v")
    await other.aclose()
    primary.available = True

    store = SessionStore(primary, fallback, clock=clock, reconcile_interval=30)
    try:
        # A new store starts "pending": it reads both backends until its first write-back.
        pending_at_start = store.pending
        assert pending_at_start
        assert await store.get("from-other") == "v"
        await clock.settle()
        assert not store.pending and "from-other" in primary.records
        assert not await fallback.has_pending()
    finally:
        await store.aclose()


async def test_a_hung_primary_costs_three_timeouts_then_calls_skip_it(
    clock: FakeClock, fallback: InMemorySessionBackend
) -> None:
    hung = asyncio.Event()

    class Hung(InMemorySessionBackend):
        async def save(self, record, now):
            await hung.wait()
            return True

        async def ping(self) -> None:
            await hung.wait()

    store = SessionStore(Hung(), fallback, clock=clock, primary_timeout=0.25)
    try:
        await store.reconcile()
        for key in ("s1", "s2", "s3"):  # one timeout is a blip; three in a row an outage
            assert store.primary_breaker.available
            task = asyncio.ensure_future(store.put(key, 1))
            await clock.advance(0.25)
            await task  # the timeout fired, the write went to the fallback
            assert key in fallback.records
        assert not store.primary_breaker.available
        await store.put("t", 2)  # immediate: the breaker is open
        assert clock.timeouts.count(0.25) == 3
    finally:
        await store.aclose()


async def test_breaker_and_store_validate_their_options() -> None:
    async def ping() -> None:
        return None

    with pytest.raises(ValueError, match=r"BackendBreaker\.timeout"):
        BackendBreaker(ping, timeout=0)
    with pytest.raises(ValueError, match=r"SessionStore\.ttl"):
        SessionStore(InMemorySessionBackend(), ttl=-1)
    shared = BackendBreaker(ping, name="redis")
    memory = InMemorySessionBackend()
    with pytest.raises(ValueError, match=r"SessionStore\.primary_timeout"):
        SessionStore(memory, primary_breaker=shared, primary_timeout=1)
    with pytest.raises(ValueError, match=r"SessionStore\.retry_interval"):
        SessionStore(memory, primary_breaker=shared, retry_interval=1)  # nothing to build
    with pytest.raises(ValueError, match=r"SessionStore\.fallback_breaker"):
        SessionStore(memory, fallback_breaker=shared)


async def test_a_shared_breaker_is_used_as_given_and_left_to_its_owner(
    clock: FakeClock, primary: CountingBackend, fallback: InMemorySessionBackend
) -> None:
    shared = BackendBreaker(primary.ping, name="redis", clock=clock, failure_threshold=2)
    store = SessionStore(primary, fallback, primary_breaker=shared, clock=clock)
    assert store.primary_breaker is shared
    assert store.fallback_breaker is not None and store.fallback_breaker.name == "redis_fallback"
    primary.available = False
    await store.put("a", 1)
    await store.put("b", 2)
    assert not shared.available  # the shared breaker's own threshold (2) applies
    await store.aclose()
    primary.available = True
    await clock.advance(1.0)
    shared.allows()
    await clock.settle()
    assert shared.available  # still usable by the others: the store did not close it
    assert store._sync_task is None  # and the closed store no longer listens to it


async def test_written_back_records_stay_readable_for_peers_still_in_fallback_mode(
    clock: FakeClock, primary: CountingBackend, fallback: InMemorySessionBackend
) -> None:
    a = SessionStore(primary, fallback, clock=clock, sync_grace=10, failure_threshold=1)
    b = SessionStore(primary, fallback, clock=clock, sync_grace=10, failure_threshold=1)
    try:
        primary.available = False
        await a.put("s", "outage")
        assert await b.get("s") == "outage"  # b falls back as well
        primary.available = True
        await a.reconcile()  # a wrote back; b has not noticed the recovery yet
        assert not b.primary_breaker.available
        assert await b.get("s") == "outage"  # still readable from the fallback
        await clock.advance(11)
        await a.reconcile()  # past the grace period: purged
        assert "s" not in fallback.records
        # b's first call after that finds nothing in the fallback, but its breaker is probing:
        # it waits for the probe and reads from the primary.
        assert await b.get("s") == "outage"
        assert b.primary_breaker.available
    finally:
        await a.aclose()
        await b.aclose()


# -- logs (append / entries) ------------------------------------------------------------------
async def test_turns_from_before_and_during_an_outage_are_merged_never_replaced(
    clock: FakeClock,
    store: SessionStore,
    primary: CountingBackend,
    fallback: InMemorySessionBackend,
) -> None:
    await store.append("conv", "t1")
    await store.append("conv", "t2")
    primary.available = False
    during = ResilienceContext("chat")
    assert await store.entries("conv", context=during) == []  # only the fallback: flagged
    assert during.degradation.as_dict() == {"redis": "fallback_database", "sessions": "partial"}
    await store.append("conv", "t3", context=during)
    assert await store.entries("conv") == ["t3"]
    await recover(clock, store, primary)
    after = ResilienceContext("chat")
    assert await store.entries("conv", context=after) == ["t1", "t2", "t3"]
    assert after.degradation.as_dict() == {}
    assert [e.data for e in await primary.entries("conv", 10)] == [b'"t1"', b'"t2"', b'"t3"']
    await clock.advance(store.sync_grace + 1)
    await store.reconcile()
    assert fallback.logs == {}  # purged after the grace period


async def test_an_entry_stored_on_both_sides_is_read_once(
    clock: FakeClock, fallback: InMemorySessionBackend
) -> None:
    """A Redis append that timed out may still have been applied (a SIGSTOPped server runs the
    buffered command when it resumes); the same entry then also sits in the fallback."""

    class AppliedThenLost(InMemorySessionBackend):
        fail_next = False

        async def append(self, entry, now, keep):
            await super().append(entry, now, keep)
            if self.fail_next:
                self.fail_next = False
                raise ConnectionError("reply lost")

    primary = AppliedThenLost()
    store = SessionStore(primary, fallback, clock=clock, ttl=60)
    try:
        await store.reconcile()
        await store.append("c", "a")
        primary.fail_next = True
        await store.append("c", "b")  # applied in the primary, and written to the fallback
        assert await store.entries("c") == ["a", "b"]  # while pending: both read, merged by id
        await store.reconcile()
        assert await store.entries("c") == ["a", "b"]
        assert len(primary.logs["c"]) == 2
    finally:
        await store.aclose()


async def test_the_log_keeps_its_newest_entries_across_a_merge(
    clock: FakeClock, primary: CountingBackend, fallback: InMemorySessionBackend
) -> None:
    store = SessionStore(primary, fallback, clock=clock, ttl=60, max_entries=3)
    try:
        await store.reconcile()
        for n in range(3):
            await store.append("c", n)
        primary.available = False
        for n in range(3, 5):
            await store.append("c", n)
        primary.available = True
        await store.primary_breaker.close()
        assert await store.entries("c") == [2, 3, 4]
        await store.reconcile()
        assert await store.entries("c") == [2, 3, 4]
        assert await store.entries("c", limit=2) == [3, 4]
    finally:
        await store.aclose()


async def test_two_replicas_appending_at_the_same_instant_keep_both_turns(
    clock: FakeClock, primary: CountingBackend
) -> None:
    a = SessionStore(primary, clock=clock)
    b = SessionStore(primary, clock=clock)
    try:
        await asyncio.gather(a.append("c", "from a"), b.append("c", "from b"))
        assert sorted(await a.entries("c")) == ["from a", "from b"]
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_turn_neither_backend_takes_in_time_is_flagged_and_raised(
    clock: FakeClock,
) -> None:
    """Both stores hang (CPU starvation, a stopped server): each is bounded by its timeout,
    and the turn is reported as not stored, never dropped silently."""
    hung = asyncio.Event()

    class Hung(InMemorySessionBackend):
        async def append(self, entry, now, keep):
            await hung.wait()

        async def entries(self, key, limit):
            await hung.wait()
            return []

    store = SessionStore(Hung(), Hung(), clock=clock, primary_timeout=0.25, fallback_timeout=2.0)
    try:
        ctx = ResilienceContext("chat")
        with pytest.raises(SessionStoreUnavailableError) as raised:
            await advance_until_done(clock, store.append("c", "turn", context=ctx))
        assert raised.value.operation == "append"
        assert ctx.degradation.as_dict() == {"redis": "unavailable", "sessions": "not_stored"}
        assert clock.monotonic() - 1000.0 == pytest.approx(2.25)  # 0.25 s + 2 s, no more
        read = ResilienceContext("chat")
        with pytest.raises(SessionStoreUnavailableError):
            await advance_until_done(clock, store.entries("c", context=read))
        assert read.degradation.reason("redis") == "unavailable"
    finally:
        hung.set()
        await store.aclose()


async def test_invalid_keys_never_reach_a_backend(
    store: SessionStore, primary: CountingBackend
) -> None:
    calls = primary.calls
    keys: list[Any] = ["", "a\x00b", "k" * 201, "\udc80", 42]
    for key in keys:
        for operation in (store.get, store.entries, store.delete):
            with pytest.raises(InvalidSessionKeyError):
                await operation(key)
        with pytest.raises(InvalidSessionKeyError):
            await store.append(key, "x")
    assert primary.calls == calls
    assert store.primary_breaker.available
    await store.append("k" * 200, "longest key accepted")
