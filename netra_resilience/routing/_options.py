"""``EndpointPoolOptions``: selection, per-endpoint breakers, all-open policy, resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from netra_resilience.circuit_breaker._options import CircuitBreakerOptions
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.routing._selection import Selection
from netra_resilience.validation import Seconds, duration, integer, set_field

_OWNER = "EndpointPoolOptions"


class AllOpenPolicy(StrEnum):
    """What a call does when no endpoint admits it.

    ``REJECT`` fails at once with :class:`NoHealthyEndpointError` carrying the earliest
    ``retry_after`` (unlike LiteLLM's bare "no deployments available"); ``WAIT`` sleeps until
    the first breaker half-opens when that is within ``max_wait``, and rejects otherwise.
    """

    REJECT = "reject"
    WAIT = "wait"


def _default_breaker() -> CircuitBreakerOptions:
    return CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=4, break_duration=5.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPoolOptions:
    """How a pool picks endpoints and when it takes them out of rotation.

    * ``breaker``: options of the circuit each endpoint gets (its own window and probes).
    * ``when_all_open`` / ``max_wait``: see :class:`AllOpenPolicy`.
    * ``refresh_interval``: resolution cache TTL; ``retry_interval``: how soon a failed
      resolution is retried (recovery is noticed this fast); ``max_stale``: how long the
      last-known-good set may serve after resolution started failing; ``resolve_timeout``:
      a resolution (DNS, discovery) still running after this counts as failed, so a hanging
      resolver never holds calls up for longer.
    * ``evict_after_opens``: an endpoint whose breaker opened this many times without one
      success in between leaves the pool for ``eviction_duration`` (``None``: never evict).
    * ``discovery_flag``: the dependency name marked ``stale_endpoints`` in the degradation.
    """

    selection: Selection = Selection.ROUND_ROBIN
    breaker: CircuitBreakerOptions = field(default_factory=_default_breaker)
    when_all_open: AllOpenPolicy = AllOpenPolicy.REJECT
    max_wait: Seconds = 5.0
    latency_decay: Seconds = 10.0
    sticky_capacity: int = 10_000
    refresh_interval: Seconds = 30.0
    retry_interval: Seconds = 5.0
    max_stale: Seconds = 300.0
    resolve_timeout: Seconds = 2.0
    evict_after_opens: int | None = 5
    eviction_duration: Seconds = 300.0
    discovery_flag: str = "discovery"

    def __post_init__(self) -> None:
        o = _OWNER
        try:
            set_field(self, "selection", Selection(self.selection))
        except ValueError:
            raise InvalidOptionsError(o, "selection", f"unknown: {self.selection!r}") from None
        try:
            set_field(self, "when_all_open", AllOpenPolicy(self.when_all_open))
        except ValueError:
            raise InvalidOptionsError(
                o, "when_all_open", f"must be 'reject' or 'wait', got {self.when_all_open!r}"
            ) from None
        if not isinstance(self.breaker, CircuitBreakerOptions):
            raise InvalidOptionsError(o, "breaker", "must be a CircuitBreakerOptions")
        set_field(self, "max_wait", duration(o, "max_wait", self.max_wait, allow_zero=True))
        for name in (
            "latency_decay",
            "refresh_interval",
            "retry_interval",
            "max_stale",
            "resolve_timeout",
        ):
            set_field(self, name, duration(o, name, getattr(self, name)))
        set_field(
            self, "eviction_duration", duration(o, "eviction_duration", self.eviction_duration)
        )
        integer(o, "sticky_capacity", self.sticky_capacity, minimum=0)
        if self.evict_after_opens is not None:
            integer(o, "evict_after_opens", self.evict_after_opens, minimum=1)
        if not self.discovery_flag:
            raise InvalidOptionsError(o, "discovery_flag", "must be a non-empty name")
