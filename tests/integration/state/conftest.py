"""Real Redis and PostgreSQL servers for the shared-state tests (no mocks).

* ``redis_server`` / ``postgres_server``: one per test session, shared; tests isolate by key
  prefix (``namespace``) or table name, and must not kill or stop them.
* ``fault_redis``: a fresh Redis server per test (starts in ~20 ms) that the test may SIGKILL
  or SIGSTOP; ``durable_redis`` the same with AOF persistence (a restart after SIGKILL keeps
  every acknowledged write, as a production Redis holding sessions should).
* ``fault_postgres``: the session's PostgreSQL, which the test may stop; it is started again
  afterwards (engines of later tests open new connections).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from tests.servers import PostgresServer, RedisServer, ServerUnavailableError


def _start_or_skip(
    factory: Callable[[], RedisServer | PostgresServer],
) -> RedisServer | PostgresServer:
    try:
        return factory()
    except ServerUnavailableError as exc:  # the binary is missing (scripts/test installs it)
        if os.environ.get("CI"):
            raise  # CI must never pass by skipping the real-server tests
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = _start_or_skip(RedisServer)
    assert isinstance(server, RedisServer)
    with server:
        yield server


@pytest.fixture
def fault_redis() -> Iterator[RedisServer]:
    server = _start_or_skip(RedisServer)
    assert isinstance(server, RedisServer)
    with server:
        yield server


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    server = _start_or_skip(functools.partial(RedisServer, appendonly=True))
    assert isinstance(server, RedisServer)
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = _start_or_skip(PostgresServer)
    assert isinstance(server, PostgresServer)
    with server:
        yield server


@pytest.fixture
def fault_postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, which this test may stop: it is running again after."""
    yield postgres_server
    postgres_server.start()


@pytest.fixture
def namespace() -> str:
    """A unique key prefix / table suffix, so tests sharing a server never collide."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    """Four spawned worker processes: replicas with their own interpreter and Redis client."""
    with ProcessPoolExecutor(
        max_workers=4, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool
