"""The README's budgets snippet, exactly as printed, on a real redis-server and the real SDK
(the one substitution: the Redis URL and the client's transport, a scripted upstream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import openai

from netra_resilience import ResilienceContext, use_context
from netra_resilience.llm import BudgetScope
from tests.integration.llm.helpers import FAKE_KEY, Upstream, completion, warm
from tests.servers import RedisServer

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def snippet() -> str:
    section = README.split("## Budgets", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_readme_budget_snippet_reserves_and_settles_on_redis(
    redis_server: RedisServer, namespace: str
) -> None:
    reply = {
        **completion("4"),
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }
    upstream = Upstream(reply)

    def client() -> openai.AsyncOpenAI:
        http = httpx2.AsyncClient(transport=upstream.transport())
        return warm(openai.AsyncOpenAI(api_key=FAKE_KEY, http_client=http, max_retries=0))

    code = snippet()
    assert 'redis_client("redis://cache:6379/0")' in code and "client = AsyncOpenAI()" in code
    code = code.replace("redis://cache:6379/0", redis_server.url).replace(
        "client = AsyncOpenAI()", "client = make_client()"
    )
    scope: dict[str, Any] = {"make_client": client}
    exec(compile(code, "README.md", "exec"), scope)  # the README, as printed
    llm, budget = scope["llm"], scope["budget"]
    tenant = f"acme-{namespace}"
    try:
        with use_context(ResilienceContext("chat", tenant_id=tenant, user_id="u1")):
            answer = await llm.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "2+2?"}], max_tokens=5
            )
        assert answer.choices[0].message.content == "4"
        day = budget.limits[0]
        assert await budget.used(day, BudgetScope(tenant=tenant)) == (9 * 2.5 + 1 * 10.0) / 1e6
    finally:
        await budget.store.aclose()
        await scope["redis"].aclose()
