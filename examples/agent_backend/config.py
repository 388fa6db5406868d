"""Configuration from environment variables (all optional: the defaults need no key, no server).

=====================  ==========================================================================
``OPENAI_API_KEY``     real openai SDK when set; the built-in simulated provider otherwise
``OPENAI_BASE_URL``    any OpenAI-compatible endpoint (used with the real SDK)
``NETRA_LLM_MODEL``    model name (default ``gpt-4o-mini``)
``NETRA_LLM_TIMEOUT``  seconds per LLM attempt (default 10)
``NETRA_REDIS_URL``    sessions on Redis with the database as fallback; ``memory://`` is an
                       in-process stand-in for Redis (demos and drills); absent: no Redis
``NETRA_DATABASE_URL`` SQLite file by default (``sqlite:///netra_demo.db``); PostgreSQL accepted
``NETRA_TOOL_URL``     base URL of the external HTTP tool (GET, JSON); simulated when absent
``PORT``               listening port (default 8000)
``NETRA_DEMO``         ``1`` turns on demo mode: the fault switches under ``/demo/faults``
``NETRA_BREAKER_SECONDS``  how long an open breaker stays open (default 15)
``NETRA_BREAKER_WINDOW``   seconds of calls a breaker judges the failure ratio over (10)
=====================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

_TRUE = frozenset({"1", "true", "yes", "on"})


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {raw!r}")
    return value


def database_url(raw: str) -> str:
    """Accept plain ``sqlite:///`` / ``postgresql://`` URLs and pick the async drivers."""
    if raw.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + raw.removeprefix("sqlite:///")
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            return "postgresql+asyncpg://" + raw.removeprefix(prefix)
    return raw


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The backend's settings. ``openai_api_key`` is kept out of ``repr`` (logs)."""

    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 10.0
    redis_url: str | None = field(default=None, repr=False)
    database_url: str = "sqlite+aiosqlite:///netra_demo.db"
    tool_url: str | None = None
    port: int = 8000
    demo_mode: bool = False
    breaker_seconds: float = 15.0
    breaker_window: float = 10.0
    discovery_ttl: float = 5.0
    simulated_latency: float = 0.005
    retry_delay: float = 0.2  # first backoff of the LLM and tool retries (tests use 0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        port_raw = env.get("PORT", "").strip() or "8000"
        if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
            raise ValueError(f"PORT must be a TCP port number, got {port_raw!r}")
        return cls(
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            llm_model=env.get("NETRA_LLM_MODEL") or "gpt-4o-mini",
            llm_timeout=_float(env, "NETRA_LLM_TIMEOUT", 10.0),
            redis_url=env.get("NETRA_REDIS_URL") or None,
            database_url=database_url(env.get("NETRA_DATABASE_URL") or "sqlite:///netra_demo.db"),
            tool_url=env.get("NETRA_TOOL_URL") or None,
            port=int(port_raw),
            demo_mode=env.get("NETRA_DEMO", "").strip().lower() in _TRUE,
            breaker_seconds=_float(env, "NETRA_BREAKER_SECONDS", 15.0),
            breaker_window=_float(env, "NETRA_BREAKER_WINDOW", 10.0),
        )

    @property
    def simulated_llm(self) -> bool:
        return self.openai_api_key is None

    def describe(self) -> dict[str, str]:
        """What the backend runs on, for the startup banner (no secrets, no credentials)."""
        redis = "none"
        if self.redis_url == "memory://":
            redis = "in-process stand-in"
        elif self.redis_url:
            redis = "configured"
        return {
            "llm": f"simulated ({self.llm_model})"
            if self.simulated_llm
            else f"openai SDK ({self.llm_model})",
            "llm_timeout": f"{self.llm_timeout:g} s per attempt",
            "sessions": f"redis={redis}, database={self.database_url.split(':', 1)[0]}",
            "tool": "simulated" if self.tool_url is None else "HTTP",
            "demo_mode": "on" if self.demo_mode else "off",
        }
