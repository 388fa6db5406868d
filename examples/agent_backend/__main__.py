"""``python -m examples.agent_backend``: serve the example backend on ``PORT`` (default 8000)."""

from __future__ import annotations

import uvicorn

from examples.agent_backend.app import create_app
from examples.agent_backend.config import Settings
from examples.agent_backend.server import server_config

WALKTHROUGH = """\
netra-resilience example agent backend on {base}
  {describe}

1. Ask something (add the word "tool" to make the agent call its external tool):
     curl -si {base}/v1/chat -d '{{"user_id":"u1","message":"hi"}}'
2. Health, criticality-weighted (application/health+json):
     curl -s {base}/health
"""

DEMO_STEPS = """\
3. Break the LLM provider (demo mode only), ask the same question again and look for the
   Netra-Degraded header: a stale answer from the cache, or a canned reply for new questions:
     curl -s -X POST {base}/demo/faults/llm -d '{{"kind":"error"}}'
     curl -si {base}/v1/chat -d '{{"user_id":"u1","message":"hi"}}'
     curl -s {base}/health   # after ~5 failed calls the llm breaker opens: warn, still 200
4. Other switches: llm_stream, tool, redis, database, auth, analytics, monitoring, discovery.
   Kinds: error, latency (+"seconds"), rate_limit (+"seconds"), malformed, dns:
     curl -s -X POST {base}/demo/faults/tool -d '{{"kind":"rate_limit","seconds":5}}'
     curl -si {base}/v1/chat -d '{{"user_id":"u1","message":"use the tool"}}'
5. Clear every fault and watch it recover (the breaker half-opens after a few seconds):
     curl -s -X DELETE {base}/demo/faults
6. Stream events over WebSocket: /v1/chat/ws (send the same JSON; agent_completed comes last).
7. Run the whole drill against this server:  netra-resilience drill --target {base}

Ctrl-C stops the server.
"""


def main() -> None:
    settings = Settings.from_env()
    base = f"http://localhost:{settings.port}"
    describe = ", ".join(f"{k}: {v}" for k, v in settings.describe().items())
    text = WALKTHROUGH.format(base=base, describe=describe)
    if settings.demo_mode:
        text += DEMO_STEPS.format(base=base)
    print(text, flush=True)
    # Bounded header/body reads and keep-alive (server.py): no stalled connection stays open.
    uvicorn.Server(server_config(create_app(settings), settings)).run()


if __name__ == "__main__":
    main()
