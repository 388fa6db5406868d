"""``PoolMember``: what the pool tracks per endpoint (breaker, load, latency, rotation)."""

from __future__ import annotations

import math

from netra_resilience.routing._breaker import EndpointBreaker
from netra_resilience.routing._endpoint import Endpoint


class PoolMember:
    """One endpoint's live state inside a pool.

    ``latency`` is an exponentially decaying average of call durations: a sample ``dt``
    seconds after the previous one weighs ``1 - exp(-dt / decay)``, so an endpoint that was
    slow a minute ago is not punished forever and a burst of samples does not swamp history.
    """

    __slots__ = (
        "breaker",
        "endpoint",
        "failed_opens",
        "in_flight",
        "latency",
        "latency_at",
        "probed_down",
        "successes",
    )

    def __init__(self, endpoint: Endpoint, breaker: EndpointBreaker) -> None:
        self.endpoint = endpoint
        self.breaker = breaker
        self.in_flight = 0
        self.latency: float | None = None
        self.latency_at = 0.0
        self.probed_down = False
        self.failed_opens = 0
        """Breaker openings since the endpoint last served a successful call (eviction)."""
        self.successes = 0

    @property
    def key(self) -> str:
        return self.endpoint.key

    def observe_latency(self, seconds: float, now: float, decay: float) -> None:
        previous = self.latency
        if previous is None:
            self.latency = seconds
        else:
            weight = 1.0 - math.exp(-max(now - self.latency_at, 0.0) / decay) if decay > 0 else 1.0
            # Never let a sample count for less than a small share, or a hot endpoint's
            # average would freeze when samples arrive at the same instant.
            weight = max(weight, 0.1)
            self.latency = previous + weight * (seconds - previous)
        self.latency_at = now

    def __repr__(self) -> str:
        return f"PoolMember({self.key}, in_flight={self.in_flight}, down={self.probed_down})"
