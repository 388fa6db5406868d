"""Example agent backend built on netra-resilience's public API (FastAPI).

Run it with ``scripts/demo`` (no API key, no servers) or ``python -m examples.agent_backend``.
"""

from examples.agent_backend.app import create_app
from examples.agent_backend.config import Settings

__all__ = ["Settings", "create_app"]
