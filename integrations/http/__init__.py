"""HTTP clients: resilient transports for httpx (:mod:`.httpx`) and httpx2 (:mod:`.httpx2`),
and endpoint routing over a pool (:mod:`.routing`).

Each submodule imports its own client library, so import the one you use::

    from netra_resilience.integrations.http.httpx2 import ResilientAsyncTransport
"""
