"""Bad configuration fails at startup with an error naming the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder
from netra_resilience.health import Criticality, Dependency, ServiceRegistry
from tests.unit.health._fakes import FakeBreaker, Switch


async def ok() -> None:
    return None


# -- from code -----------------------------------------------------------------------
def test_dependency_normalises_criticality_and_durations() -> None:
    dep = Dependency("redis", "IMPORTANT", check=ok, check_timeout=timedelta(milliseconds=500))
    assert dep.criticality is Criticality.IMPORTANT
    assert dep.check_timeout == 0.5


def test_unknown_criticality_names_the_field() -> None:
    with pytest.raises(InvalidOptionsError) as err:
        Dependency("redis", "vital")
    assert err.value.field == "criticality"
    assert "Dependency[redis].criticality" in str(err.value)
    assert "critical, important, optional, monitoring" in str(err.value)


@pytest.mark.parametrize("name", ["", "has space", "a:b", "x" * 65, "-lead", 3])
def test_bad_dependency_name(name: Any) -> None:
    with pytest.raises(InvalidOptionsError, match=r"Dependency\.name"):
        Dependency(name, "critical")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(
        InvalidOptionsError, match=r"ServiceRegistry\.dependencies names 'db' twice"
    ):
        ServiceRegistry([Dependency("db", "critical"), Dependency("db", "optional")])


@pytest.mark.parametrize("interval", [0, -1, 0.0, timedelta(0)])
def test_probe_interval_must_be_positive(interval: Any) -> None:
    with pytest.raises(InvalidOptionsError, match=r"ServiceRegistry\.probe_interval must be > 0"):
        ServiceRegistry(probe_interval=interval)


def test_dependency_probe_interval_must_be_positive() -> None:
    with pytest.raises(InvalidOptionsError, match=r"Dependency\[db\]\.probe_interval"):
        Dependency("db", "critical", probe_interval=0)


def test_check_timeout_may_not_exceed_interval() -> None:
    with pytest.raises(InvalidOptionsError, match=r"Dependency\[db\]\.check_timeout"):
        ServiceRegistry(
            [Dependency("db", "critical", check=ok, check_timeout=20)], probe_interval=10
        )


def test_other_field_errors() -> None:
    pipeline = PipelineBuilder("db").build()
    with pytest.raises(InvalidOptionsError, match=r"\.check must be callable"):
        Dependency("db", "critical", check="SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"\.failure_threshold"):
        Dependency("db", "critical", failure_threshold=0)
    with pytest.raises(InvalidOptionsError, match=r"\.component_type"):
        Dependency("db", "critical", component_type="database")
    with pytest.raises(InvalidOptionsError, match=r"\.fallback cannot be combined"):
        Dependency("db", "critical", pipeline=pipeline, fallback=lambda args: None)
    with pytest.raises(InvalidOptionsError, match=r"\.breaker must be a circuit breaker"):
        Dependency("db", "critical", breaker=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError, match=r"\.strategies must hold options"):
        Dependency("db", "critical", strategies=[object()])  # type: ignore[list-item]


def test_registry_resolves_pipeline_and_breaker() -> None:
    breaker = FakeBreaker()
    pipeline = PipelineBuilder("llm").add_strategy(breaker).build()
    registry = ServiceRegistry(
        [Dependency("llm", "important", pipeline=pipeline), Dependency("analytics", "optional")]
    )
    assert registry.pipeline("llm") is pipeline
    assert registry.breaker("llm") is breaker
    assert registry.breaker("analytics") is None
    assert registry.pipeline("analytics").name == "analytics"
    assert registry.criticality_of("llm") is Criticality.IMPORTANT
    assert registry.criticality_of("nope") is None
    assert registry.criticality_of(None) is None
    assert list(registry) == ["llm", "analytics"] and len(registry) == 2 and "llm" in registry
    assert registry["analytics"].criticality is Criticality.OPTIONAL


# -- from settings ---------------------------------------------------------------------
def test_from_settings_happy_path() -> None:
    switch = Switch()
    registry = ServiceRegistry.from_settings(
        {
            "probe_interval": "5",
            "check_timeout": 1,
            "dependencies": {
                "postgres": "critical",
                "redis": {
                    "criticality": "important",
                    "check_timeout": 0.5,
                    "component_type": "datastore",
                },
            },
        },
        checks={"postgres": switch},
    )
    assert registry.probe_interval == 5.0 and registry.check_timeout == 1.0
    assert registry["postgres"].check is switch
    assert registry["redis"].check_timeout == 0.5
    assert registry["redis"].component_type == "datastore"


def test_from_settings_accepts_pydantic_style_objects() -> None:
    class Settings:
        def model_dump(self) -> dict[str, Any]:
            return {"dependencies": [{"name": "db", "criticality": "critical"}]}

    assert ServiceRegistry.from_settings(Settings())["db"].criticality is Criticality.CRITICAL


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"dependencies": {"redis": "vital"}}, "settings.dependencies.redis.criticality"),
        (
            {"dependencies": {"redis": {"check_timeout": 1}}},
            "settings.dependencies.redis.criticality",
        ),
        ({"probe_interval": 0}, "settings.probe_interval"),
        ({"probe_interval": "soon"}, "settings.probe_interval"),
        ({"check_timeout": -1}, "settings.check_timeout"),
        ({"probe_intervall": 3}, "settings.probe_intervall"),
        (
            {"dependencies": {"redis": {"criticality": "optional", "ttl": 3}}},
            "settings.dependencies.redis.ttl",
        ),
        (
            {
                "dependencies": [
                    {"name": "db", "criticality": "critical"},
                    {"name": "db", "criticality": "optional"},
                ]
            },
            "settings.dependencies",
        ),
        ({"dependencies": {"bad name": "critical"}}, "settings.dependencies.bad name"),
        (
            {"dependencies": {"db": {"criticality": "critical", "failure_threshold": "x"}}},
            "settings.dependencies.db.failure_threshold",
        ),
        (
            {"dependencies": {"db": {"criticality": "critical", "probe_interval": 0}}},
            "settings.dependencies.db.probe_interval",
        ),
        ({"dependencies": 3}, "settings.dependencies"),
    ],
)
def test_from_settings_errors_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOptionsError) as err:
        ServiceRegistry.from_settings(settings)
    assert str(err.value).startswith(field + " "), str(err.value)


def test_from_settings_refuses_code_for_undeclared_dependency() -> None:
    with pytest.raises(InvalidOptionsError, match=r"from_settings\.checks names 'pg'"):
        ServiceRegistry.from_settings({"dependencies": {"postgres": "critical"}}, checks={"pg": ok})


# -- from the environment --------------------------------------------------------------
def test_from_env_happy_path() -> None:
    registry = ServiceRegistry.from_env(
        {
            "NETRA_DEPENDENCIES": "postgres=critical, redis=Important,analytics=optional,",
            "NETRA_PROBE_INTERVAL": "15",
            "NETRA_CHECK_TIMEOUT": "3",
        },
        checks={"postgres": ok},
    )
    assert list(registry) == ["postgres", "redis", "analytics"]
    assert registry["redis"].criticality is Criticality.IMPORTANT
    assert registry.probe_interval == 15.0 and registry.check_timeout == 3.0


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DEPENDENCIES", "db=critical")
    assert list(ServiceRegistry.from_env(prefix="APP_")) == ["db"]


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        ({"NETRA_DEPENDENCIES": "redis=vital"}, "NETRA_DEPENDENCIES", "'redis'"),
        ({"NETRA_DEPENDENCIES": "redis=optional,redis=critical"}, "NETRA_DEPENDENCIES", "twice"),
        ({"NETRA_DEPENDENCIES": "redis"}, "NETRA_DEPENDENCIES", "name=criticality"),
        ({"NETRA_PROBE_INTERVAL": "0"}, "NETRA_PROBE_INTERVAL", "> 0"),
        ({"NETRA_PROBE_INTERVAL": "-5"}, "NETRA_PROBE_INTERVAL", "> 0"),
        ({"NETRA_CHECK_TIMEOUT": "abc"}, "NETRA_CHECK_TIMEOUT", "number of seconds"),
    ],
)
def test_from_env_errors_name_the_variable(
    environ: dict[str, str], variable: str, fragment: str
) -> None:
    with pytest.raises(InvalidOptionsError) as err:
        ServiceRegistry.from_env(environ)
    assert str(err.value).startswith(f"environment.{variable} "), str(err.value)
    assert fragment in str(err.value)


async def test_registry_builds_strategies_and_fallback_outermost() -> None:
    from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitBreakerStrategy
    from netra_resilience.fallback import FallbackArgs, FallbackStrategy

    def canned(args: FallbackArgs) -> str:
        return "canned reply"

    registry = ServiceRegistry(
        [Dependency("llm", "important", strategies=[CircuitBreakerOptions()], fallback=canned)]
    )
    pipeline = registry.pipeline("llm")
    assert [type(s) for s in pipeline.strategies] == [FallbackStrategy, CircuitBreakerStrategy]
    assert registry.breaker("llm") is pipeline.find(CircuitBreakerStrategy)

    async def down() -> str:
        raise ConnectionError("provider down")

    assert await pipeline.execute(down) == "canned reply"


def test_core_health_imports_no_web_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, netra_resilience.health; "
        "bad = [m for m in ('fastapi', 'starlette', 'opentelemetry', 'prometheus_client') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("threshold", [None, [1], {}, float("inf")])
def test_a_failure_threshold_of_the_wrong_type_is_a_named_error(threshold: Any) -> None:
    settings = {"dependencies": {"db": {"criticality": "critical", "failure_threshold": threshold}}}
    with pytest.raises(InvalidOptionsError) as err:
        ServiceRegistry.from_settings(settings)
    assert str(err.value).startswith("settings.dependencies.db.failure_threshold ")
