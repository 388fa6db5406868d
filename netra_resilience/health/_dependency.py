"""Dependencies and their criticality, and the health status vocabulary."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.pipeline import Pipeline
from netra_resilience.strategy import StrategyOptions
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    integer,
    optional_duration,
    set_field,
)


class Criticality(StrEnum):
    """How much the service depends on a dependency."""

    CRITICAL = "critical"
    """Cannot serve without it (PostgreSQL, auth): a failure fails the service and readiness."""
    IMPORTANT = "important"
    """Serves degraded without it (the LLM behind a cache, Redis): a failure is ``warn``."""
    OPTIONAL = "optional"
    """Nice to have (analytics): a failure is ``warn``."""
    MONITORING = "monitoring"
    """Observability sinks: shown in the detail, never changes the aggregate."""


class HealthStatus(StrEnum):
    """The IETF health-check vocabulary (draft-inadarei-api-health-check-06)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {HealthStatus.PASS: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}
_CRITICALITIES = ", ".join(c.value for c in Criticality)


def parse_criticality(value: object, owner: str, field: str) -> Criticality:
    """Accept a :class:`Criticality` or its name (any case); name the field when it is wrong."""
    if isinstance(value, Criticality):
        return value
    if isinstance(value, str):
        try:
            return Criticality(value.strip().lower())
        except ValueError:
            pass
    raise InvalidOptionsError(owner, field, f"must be one of {_CRITICALITIES}, got {value!r}")


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    result = HealthStatus.PASS
    for status in statuses:
        if _RANK[status] > _RANK[result]:
            result = status
    return result


def weighted(criticality: Criticality, status: HealthStatus) -> HealthStatus:
    """What one dependency's status contributes to the service's status."""
    if criticality is Criticality.MONITORING:
        return HealthStatus.PASS
    if status is HealthStatus.FAIL and criticality is not Criticality.CRITICAL:
        return HealthStatus.WARN
    return status


HealthCheck = Callable[[], Awaitable[object]]
"""A cheap async check (Redis ``PING``, ``SELECT 1``; never a paid LLM call).

It passes when it returns ``None`` or ``True``, fails when it returns ``False`` or raises, and
may return a :class:`HealthStatus` (e.g. ``WARN`` for replica lag). Any other return value
is ignored (treated as a pass) and never shown: only the exception *type* of a failure is.
"""

COMPONENT_TYPES = ("component", "datastore", "system")
DEFAULT_PROBE_INTERVAL = 10.0
DEFAULT_CHECK_TIMEOUT = 2.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@runtime_checkable
class BreakerLike(Protocol):
    """What health needs from a circuit breaker (``CircuitBreakerStrategy`` provides it)."""

    @property
    def state(self) -> str: ...

    @property
    def retry_after(self) -> float | None: ...

    async def isolate(self) -> None: ...

    async def close(self) -> None: ...


def check_name(owner: str, field: str, name: object) -> str:
    """Dependency names go into headers, metric attributes and health keys: keep them tokens."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidOptionsError(
            owner,
            field,
            "must be 1-64 characters of letters, digits, '_', '.', '-' (starting with a letter "
            f"or digit), got {name!r}",
        )
    return name


@dataclass(frozen=True, slots=True)
class Dependency:
    """A downstream dependency, declared once.

    Give either a pre-built ``pipeline`` or the ``strategies`` (options objects, outermost
    first) for the registry to build one with its clock and telemetry; a ``fallback`` action
    (``FallbackOptions.action``) is then added as the outermost strategy. The breaker that
    health reads is ``breaker`` or else the pipeline's circuit breaker.

    ``isolate_on_failure``: when the health check fails ``failure_threshold`` times in a row,
    the monitor isolates the breaker so calls fail fast into their fallbacks instead of each
    waiting for its own timeout; when the check passes again the monitor closes the breaker it
    isolated (never one an operator isolated).

    ``standby_for``: the name of the dependency this one stands in for (a session database
    behind Redis). Its criticality then says what the request path needs *now*: while that
    primary is not failing, nothing waits on the standby, so its failure is only a warning
    (shown as ``important``); while the primary fails, its own ``criticality`` applies.
    Declare the primary first.

    ``shared``: one instance serves every replica (the database, an auth service). A shared
    dependency's failure still fails ``/health`` as its criticality says, but never
    readiness: every replica sees the same outage, so taking them out of rotation cannot
    route around it and would turn degraded answers (or fast 503s with ``Retry-After``) into
    none. Readiness is for what is wrong with *this* replica.
    """

    name: str
    criticality: Criticality | str
    _: KW_ONLY
    check: HealthCheck | None = None
    pipeline: Pipeline | None = None
    strategies: Sequence[StrategyOptions] = ()
    breaker: BreakerLike | None = None
    fallback: Callable[..., Any] | None = None
    component_type: str = "component"
    check_timeout: Seconds | None = None
    probe_interval: Seconds | None = None
    failure_threshold: int = 1
    isolate_on_failure: bool = True
    standby_for: str | None = None
    shared: bool = False

    def __post_init__(self) -> None:
        check_name("Dependency", "name", self.name)
        owner = f"Dependency[{self.name}]"
        set_field(self, "criticality", parse_criticality(self.criticality, owner, "criticality"))
        callable_or_none(owner, "check", self.check)
        callable_or_none(owner, "fallback", self.fallback)
        timeout = optional_duration(owner, "check_timeout", self.check_timeout)
        set_field(self, "check_timeout", timeout)
        interval = optional_duration(owner, "probe_interval", self.probe_interval)
        set_field(self, "probe_interval", interval)
        integer(owner, "failure_threshold", self.failure_threshold, minimum=1)
        if self.standby_for is not None:
            check_name(owner, "standby_for", self.standby_for)
            if self.standby_for == self.name:
                raise InvalidOptionsError(owner, "standby_for", "cannot name the dependency itself")
        if not isinstance(self.shared, bool):
            raise InvalidOptionsError(owner, "shared", f"must be a bool, got {self.shared!r}")
        if self.component_type not in COMPONENT_TYPES:
            allowed = ", ".join(COMPONENT_TYPES)
            raise InvalidOptionsError(
                owner, "component_type", f"must be one of {allowed}, got {self.component_type!r}"
            )
        pipeline: object = self.pipeline
        if pipeline is not None:
            if not isinstance(pipeline, Pipeline):
                kind = type(pipeline).__name__
                raise InvalidOptionsError(owner, "pipeline", f"must be a Pipeline, got {kind}")
            if self.strategies or self.fallback is not None:
                field = "strategies" if self.strategies else "fallback"
                raise InvalidOptionsError(
                    owner, field, "cannot be combined with a pre-built pipeline (add it there)"
                )
        set_field(self, "strategies", tuple(self.strategies))
        strategies: tuple[object, ...] = tuple(self.strategies)
        for strategy in strategies:
            if not isinstance(strategy, StrategyOptions):
                kind = type(strategy).__name__
                raise InvalidOptionsError(owner, "strategies", f"must hold options, got {kind}")
        breaker: object = self.breaker
        if breaker is not None and not isinstance(breaker, BreakerLike):
            kind = type(breaker).__name__
            raise InvalidOptionsError(owner, "breaker", f"must be a circuit breaker, got {kind}")
