"""A real PostgreSQL (DBOS's system database and the run ledger) and redis-server (the run
event log) for the durable-run tests, shared by the module."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.servers import PostgresServer, RedisServer, ServerUnavailableError

S = TypeVar("S")


def start_or_skip(factory: Callable[[], S]) -> S:
    try:
        return factory()
    except ServerUnavailableError as exc:  # a binary is missing (scripts/test installs it)
        if os.environ.get("CI"):
            raise  # CI must never pass by skipping the real-server tests
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with start_or_skip(PostgresServer) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with start_or_skip(RedisServer) as server:
        yield server
