"""Endpoint pools: health-aware routing over several addresses of one dependency.

* :class:`EndpointPool` picks an endpoint per call (round robin, least in-flight or
  latency-weighted), skipping those whose own breaker is open, optionally sticky by key; when
  all are open it waits (bounded) or rejects with the earliest ``retry_after``.
* Endpoints come from :class:`StaticEndpoints`, :class:`DnsEndpoints` or
  :class:`DiscoveryEndpoints`, cached with a TTL; a failing resolution keeps serving the
  last-known-good set (flagged ``discovery=stale_endpoints``) until ``max_stale``.
* :class:`EndpointProber` takes endpoints out of rotation on failed probes and back in.
* ``netra_resilience.integrations.http.routing.EndpointRoutingTransport`` routes httpx and
  httpx2 requests.
"""

from netra_resilience.routing._endpoint import (
    AllOpenPolicy,
    Endpoint,
    EndpointBreaker,
    EndpointPoolOptions,
    EndpointResolutionError,
    LatencyWeighted,
    LeastInFlight,
    NoHealthyEndpointError,
    PoolMember,
    RoundRobin,
    Selection,
    Selector,
)
from netra_resilience.routing._pool import (
    DiscoveryEndpoints,
    DnsEndpoints,
    EndpointPool,
    EndpointSource,
    ResolutionCache,
    Resolver,
    StaticEndpoints,
    getaddrinfo_resolver,
)
from netra_resilience.routing._prober import EndpointCheck, EndpointProber

__all__ = [
    "AllOpenPolicy",
    "DiscoveryEndpoints",
    "DnsEndpoints",
    "Endpoint",
    "EndpointBreaker",
    "EndpointCheck",
    "EndpointPool",
    "EndpointPoolOptions",
    "EndpointProber",
    "EndpointResolutionError",
    "EndpointSource",
    "LatencyWeighted",
    "LeastInFlight",
    "NoHealthyEndpointError",
    "PoolMember",
    "ResolutionCache",
    "Resolver",
    "RoundRobin",
    "Selection",
    "Selector",
    "StaticEndpoints",
    "getaddrinfo_resolver",
]
