"""``netra-resilience drill``: prove an agent backend survives its dependencies failing.

Runs the origin failure scenarios (Redis down, database exhaustion, LLM timeouts, rate limits,
discovery/DNS failures, health-check failures, auth failures, connection churn) plus LLM
stalls and malformed responses, with concurrent simulated users, against the example backend
in-process or any backend in demo mode (``--target URL``). Needs the ``httpx``, ``websockets``,
``rich`` and ``plotly`` packages (and ``uvicorn`` for the in-process target); nothing here is
imported by ``netra_resilience`` itself.
"""

from __future__ import annotations

from netra_resilience.drill._cli import entry_point, main

__all__ = ["entry_point", "main"]
