"""The default target: the example backend served by uvicorn inside the drill's own process.

Real sockets on loopback (so HTTP, keep-alive churn and WebSockets behave as in production),
no external servers: sessions on a temporary SQLite file behind an in-process Redis stand-in,
the simulated LLM provider and tool. Timeouts and breaker durations are short so a scenario
fits in seconds. The example app lives in the repository's ``examples/`` folder, imported
lazily: with a wheel install (no ``examples/``), use ``--target URL`` instead.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


def _import_example() -> Any:
    try:
        return importlib.import_module("examples.agent_backend")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2]  # a source checkout / editable install
        if not (root / "examples" / "agent_backend").is_dir():
            raise RuntimeError(
                "the in-process drill needs the repository's examples/agent_backend "
                "(run from a source checkout), or drill a running backend with --target URL"
            ) from None
        sys.path.insert(0, str(root))
        return importlib.import_module("examples.agent_backend")


@asynccontextmanager
async def in_process_backend(*, llm_timeout: float = 0.3) -> AsyncIterator[str]:
    """Serve the example backend on a free loopback port; yields its base URL."""
    import uvicorn

    example = _import_example()
    with tempfile.TemporaryDirectory(prefix="netra-drill-") as folder:
        settings = example.Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'drill.db'}",
            redis_url="memory://",
            demo_mode=True,
            llm_timeout=llm_timeout,
            breaker_seconds=1.0,
            breaker_window=2.0,
            discovery_ttl=0.5,
            retry_delay=0.05,
        )
        app = example.create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the in-process backend stopped during startup")
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task
