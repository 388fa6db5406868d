"""Test doubles for the cache tests: a counting upstream, failing backends, a fake breaker."""

from __future__ import annotations

import asyncio
from typing import Any

from netra_resilience import BrokenCircuitError, Outcome, ResilienceContext
from netra_resilience.cache import CacheEntry, stable_key
from netra_resilience.strategy import Callback, Strategy


def by_arguments(context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return stable_key(args, kwargs)


class Upstream:
    """The dependency: counts calls, answers ``answer:<prompt>`` or raises ``error``."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None
        self.answer = "answer"

    async def __call__(self, prompt: str, **params: Any) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return f"{self.answer}:{prompt}"


class BrokenBackend:
    """Every operation raises (a Redis that is down)."""

    def __init__(self, *, get: bool = True, set: bool = True) -> None:
        self.fail_get, self.fail_set = get, set
        self.stored: dict[str, CacheEntry] = {}

    async def get(self, key: str) -> CacheEntry | None:
        if self.fail_get:
            raise ConnectionError("cache down")
        return self.stored.get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if self.fail_set:
            raise ConnectionError("cache down")
        self.stored[key] = entry

    async def delete(self, key: str) -> None:
        self.stored.pop(key, None)


class HangingBackend:
    """Operations never complete (a cache behind a black-holed network)."""

    def __init__(self) -> None:
        self.started = 0

    async def get(self, key: str) -> CacheEntry | None:
        self.started += 1
        await asyncio.Event().wait()
        return None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        self.started += 1
        await asyncio.Event().wait()

    async def delete(self, key: str) -> None:
        return None


class FakeBreaker(Strategy):
    """Stands in for a circuit breaker: when open, rejects with a fresh BrokenCircuitError."""

    kind = "fake_breaker"

    def __init__(self) -> None:
        self.open = False

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        if self.open:
            return Outcome(None, BrokenCircuitError(retry_after=5.0, dependency="llm"))
        return await callback(context, state)
