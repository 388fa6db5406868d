"""The example backend's settings: pydantic-settings over NETRA_* (and the few bare names)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from examples.agent_backend import Settings
from tests.integration.example.helpers import SECRET


def test_variables_and_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY": SECRET,
            "OPENAI_BASE_URL": "http://llm.internal/v1",
            "NETRA_LLM_MODEL": "gpt-4o",
            "NETRA_REDIS_URL": "memory://",
            "NETRA_DATABASE_URL": "sqlite:///data/app.db",
            "NETRA_TOOL_URL": "http://tool.internal",
            "PORT": "9000",
            "NETRA_DEMO": "1",
            "NETRA_BREAKER_SECONDS": "3",
            "NETRA_BREAKER_WINDOW": "20",
            "HOME": "/root",  # the rest of an environment is ignored
        }
    )
    assert settings.openai_api_key == SECRET and not settings.simulated_llm
    assert settings.openai_base_url == "http://llm.internal/v1"
    assert settings.llm_model == "gpt-4o"
    assert settings.redis_url == "memory://"
    assert settings.database_url == "sqlite+aiosqlite:///data/app.db"
    assert settings.tool_url == "http://tool.internal"
    assert settings.port == 9000 and settings.demo_mode
    assert (settings.breaker_seconds, settings.breaker_window) == (3.0, 20.0)
    assert SECRET not in repr(settings) + str(settings.describe())

    defaults = Settings.from_env({"NETRA_LLM_MODEL": "", "PORT": ""})  # empty = unset
    assert defaults == Settings()
    assert (defaults.llm_model, defaults.port, defaults.llm_timeout) == ("gpt-4o-mini", 8000, 10)
    assert defaults.database_url == "sqlite+aiosqlite:///netra_demo.db"
    assert Settings.from_env({"NETRA_DATABASE_URL": "postgres://db/x"}).database_url == (
        "postgresql+asyncpg://db/x"
    )


@pytest.mark.parametrize(
    ("variable", "raw", "field"),
    [
        ("NETRA_LLM_TIMEOUT", "-7.5", "llm_timeout"),
        ("NETRA_LLM_TIMEOUT", "soon", "llm_timeout"),
        ("NETRA_BREAKER_SECONDS", "-15", "breaker_seconds"),
        ("PORT", "70000", "PORT"),
        ("PORT", "eighty", "PORT"),
        ("NETRA_DEMO", "maybe", "NETRA_DEMO"),
    ],
)
def test_a_bad_value_names_its_field_not_its_value(variable: str, raw: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_env({variable: raw})
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert raw not in str(caught.value)  # inputs may be credentials: never echoed


def test_the_process_environment_is_read_only_by_from_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("NETRA_LLM_TIMEOUT", "2.5")
    assert Settings.from_env().openai_api_key == SECRET
    assert Settings.from_env().llm_timeout == 2.5
    explicit = Settings(llm_timeout=1.0, demo_mode=True)  # tests and the drill build it so
    assert explicit.simulated_llm and explicit.llm_timeout == 1.0 and explicit.demo_mode
    assert Settings.from_env({}).simulated_llm  # a given mapping replaces the environment
    with pytest.raises(ValidationError):
        explicit.port = 1  # frozen, like the dataclass it replaces
