"""Configuration from environment variables (all optional: the defaults need no key, no server).

=============================  =====================================================================
``OPENAI_API_KEY``             the openai SDK calls the real API when set; otherwise the same SDK
                               calls a simulated OpenAI-compatible provider served in-process
``OPENAI_BASE_URL``            any OpenAI-compatible endpoint (with ``OPENAI_API_KEY``)
``NETRA_LLM_MODEL``            model name (default ``gpt-4o-mini``)
``NETRA_LLM_TIMEOUT``          seconds per LLM attempt (default 10)
``NETRA_REDIS_URL``            sessions on Redis with the database as fallback; ``memory://`` is an
                               in-process stand-in for Redis (demos and drills); absent: no Redis
``NETRA_DATABASE_URL``         SQLite file by default (``sqlite:///netra_demo.db``); PostgreSQL
                               accepted
``NETRA_TOOL_URL``             base URL of the external HTTP tool (GET, JSON); simulated when absent
``PORT``                       listening port (default 8000)
``NETRA_DEMO``                 ``1`` turns on demo mode: the fault switches under ``/demo/faults``
``NETRA_BREAKER_SECONDS``      how long an open breaker stays open (default 15)
``NETRA_BREAKER_WINDOW``       seconds of calls a breaker judges the failure ratio over (10)
``NETRA_HEADER_TIMEOUT``       seconds a client has to send a request head (10; ``server.py``)
``NETRA_BODY_TIMEOUT``         seconds without a body byte before the connection is closed (10)
``NETRA_KEEP_ALIVE_TIMEOUT``   seconds an idle keep-alive connection stays open (5)
``NETRA_WS_MAX_SIZE``          bytes of the largest WebSocket frame the server reads (1 MiB; past it
                               the socket closes with 1009, below it the app answers frames over
                               128 KiB with an error event)
=============================  =====================================================================

Parsed by pydantic-settings: every other field is ``NETRA_<FIELD>`` too (e.g.
``NETRA_DISCOVERY_TTL``); an empty variable counts as unset; a bad value fails at startup with a
``ValidationError`` naming the field (the value itself is not echoed: it may be a credential).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


def database_url(raw: str) -> str:
    """Accept plain ``sqlite:///`` / ``postgresql://`` URLs and pick the async drivers."""
    if raw.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + raw.removeprefix("sqlite:///")
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            return "postgresql+asyncpg://" + raw.removeprefix(prefix)
    return raw


class Settings(BaseSettings):
    """The backend's settings: :meth:`from_env` reads the environment (the table above).

    ``Settings(**values)`` takes only the values given, never the process environment: tests
    and the drill build it that way, and a developer's exported ``OPENAI_API_KEY`` must not turn
    them into paid calls. Credentials (``openai_api_key``, ``redis_url``) are kept out of
    ``repr`` (logs).
    """

    model_config = SettingsConfigDict(
        env_prefix="NETRA_",
        env_ignore_empty=True,
        extra="ignore",  # the environment holds much more than our variables
        frozen=True,
        populate_by_name=True,  # Settings(port=...) as well as the PORT alias (any pydantic 2)
        hide_input_in_errors=True,
    )

    openai_api_key: str | None = Field(default=None, repr=False, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = Field(default=10.0, gt=0)
    redis_url: str | None = Field(default=None, repr=False)
    database_url: str = "sqlite+aiosqlite:///netra_demo.db"
    tool_url: str | None = None
    port: int = Field(default=8000, gt=0, lt=65536, validation_alias="PORT")
    demo_mode: bool = Field(default=False, validation_alias="NETRA_DEMO")
    breaker_seconds: float = Field(default=15.0, gt=0)
    breaker_window: float = Field(default=10.0, gt=0)
    discovery_ttl: float = Field(default=5.0, gt=0)
    simulated_latency: float = Field(default=0.005, ge=0)
    # the first backoff of the LLM and tool retries (tests use 0)
    retry_delay: float = Field(default=0.2, ge=0)
    # what `python -m examples.agent_backend` gives uvicorn (server.py)
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=10.0, gt=0)
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    ws_max_size: int = Field(default=1 << 20, ge=1 << 17)
    # seconds a replica holds its runs without renewing; then another replica's sweep ends them
    run_lease: float = Field(default=15.0, gt=0)
    # how many replicas share the LLM retry budget on Redis (each spends 1/replicas between syncs)
    replicas: int = Field(default=1, ge=1)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return database_url(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values only; the environment is read by from_env (see the class doc).
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (default: the process environment)."""
        source = EnvSettingsSource(cls)
        if environ is not None:
            # The same source over another mapping: keys case-insensitive, empty = unset.
            source.env_vars = {k.lower(): v for k, v in environ.items() if v}
        values: dict[str, Any] = source()
        return cls(**values)

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
