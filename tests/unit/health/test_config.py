"""Bad configuration fails at startup with an error naming the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from netra_resilience import InvalidOptionsError, PipelineBuilder
from netra_resilience.health import Criticality, Dependency, ServiceRegistry
from tests.unit.health._fakes import FakeBreaker


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








# -- from the environment --------------------------------------------------------------






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


