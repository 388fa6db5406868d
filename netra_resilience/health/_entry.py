"""A registered dependency resolved: its pipeline, its breaker and its effective timings."""

from __future__ import annotations

from collections.abc import Callable

from netra_resilience.clock import Clock
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health._dependency import BreakerLike, Dependency
from netra_resilience.health._fields import DependencyFields
from netra_resilience.health._status import Criticality
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.validation import to_seconds


class _Entry:
    """A dependency with everything resolved: pipeline, breaker, effective probe timings."""

    __slots__ = (
        "breaker",
        "check_timeout",
        "criticality",
        "dependency",
        "pipeline",
        "probe_interval",
    )

    def __init__(
        self,
        dependency: Dependency,
        pipeline: Pipeline,
        breaker: BreakerLike | None,
        probe_interval: float,
        check_timeout: float,
    ) -> None:
        self.dependency = dependency
        self.criticality = Criticality(dependency.criticality)
        self.pipeline = pipeline
        self.breaker = breaker
        self.probe_interval = probe_interval
        self.check_timeout = check_timeout


def find_breaker(pipeline: Pipeline) -> BreakerLike | None:
    """The pipeline's outermost circuit breaker, if it has one.

    Matched by shape (:class:`BreakerLike`), so ``CircuitBreakerStrategy`` and any custom
    breaker strategy both qualify.
    """
    for strategy in pipeline.strategies:
        if isinstance(strategy, BreakerLike):
            return strategy
    return None


def probe_timings(
    dependency: Dependency, default_interval: float, default_timeout: float
) -> tuple[float, float]:
    """The dependency's probe interval and check timeout, the registry's where unset.

    A checked dependency's timeout must fit in its interval, or probes would overlap.
    """
    owner = f"Dependency[{dependency.name}]"
    interval = dependency.probe_interval
    timeout = dependency.check_timeout
    interval = default_interval if interval is None else to_seconds(interval)
    timeout = default_timeout if timeout is None else to_seconds(timeout)
    if dependency.check is not None and timeout > interval:
        raise InvalidOptionsError(
            owner,
            "check_timeout",
            f"must not exceed the probe interval ({interval} s), got {timeout} s",
        )
    return interval, timeout


def build_pipeline(
    dependency: Dependency,
    *,
    clock: Clock,
    random: Callable[[], float],
    telemetry: TelemetryListener | None,
) -> Pipeline:
    """The dependency's pipeline from its declared fallback and strategies."""
    if telemetry is not None:
        telemetry = DependencyFields(telemetry, Criticality(dependency.criticality))
    builder = PipelineBuilder(dependency.name, clock=clock, random=random, telemetry=telemetry)
    if dependency.fallback is not None:
        from netra_resilience.fallback import FallbackOptions

        builder.add(FallbackOptions(action=dependency.fallback))
    for options in dependency.strategies:
        builder.add(options)
    return builder.build()
