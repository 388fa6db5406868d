"""The example backend's conversations across a real redis-server SIGKILL, over HTTP.

50 users chat through ``POST /v1/chat`` (the real agent, the real store, Redis with AOF as a
production session Redis runs, the SQLite fallback); Redis is SIGKILLed mid-conversation and
restarted. Every turn the user was not told was lost must be in their history afterwards.
The app runs on a fake clock: a refused connection fails at once, so no wait is real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from examples.agent_backend.agent import NOT_SAVED, Agent
from netra_resilience.testing import FakeClock
from tests.integration.example.helpers import chat, running, settings_for
from tests.servers import RedisServer

USERS = 50


async def test_no_acknowledged_turn_is_lost_across_a_redis_sigkill(tmp_path: Path) -> None:
    clock = FakeClock()
    with RedisServer(appendonly=True) as redis_server:
        settings = settings_for(tmp_path, redis_url=redis_server.url)
        async with running(settings, clock) as client:
            acknowledged: dict[str, list[str]] = {f"u{i}": [] for i in range(USERS)}
            degraded: list[str] = []

            async def turn(user: str, n: int) -> None:
                message = f"{user} says {n}"
                response = await chat(client, message, user=user)
                assert response.status_code == 200
                body = response.json()
                degraded.append(response.headers.get("netra-degraded", ""))
                if not body["answer"].endswith(NOT_SAVED):
                    acknowledged[user].append(message)

            async def everyone(n: int) -> None:
                await asyncio.gather(*(turn(user, n) for user in acknowledged))

            for n in range(2):  # Redis up
                await everyone(n)
            redis_server.kill()
            for n in range(2, 4):  # Redis gone: the database takes the turns
                await everyone(n)
            assert any("redis=fallback_database" in d for d in degraded)
            redis_server.start()  # its AOF brings back what it acknowledged before the kill
            await clock.advance(1.0)  # the Redis breaker's probe interval
            for n in range(4, 6):
                await everyone(n)

            app = client._transport.app  # type: ignore[attr-defined]
            agent = app.state.backend.engine.engine
            assert isinstance(agent, Agent)
            lost = 0
            for user, messages in acknowledged.items():
                history = await agent.conversations.history(user)
                lost += len(set(messages) - {t["user"] for t in history})
                assert [t["user"] for t in history] == messages, user
        total = sum(len(m) for m in acknowledged.values())
        assert total == USERS * 6 and lost == 0
        print(f"example backend, SIGKILL, {USERS} users: {total} acknowledged turns, 0 lost")
