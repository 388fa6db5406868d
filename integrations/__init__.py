"""Adapters between netra-resilience and third-party libraries.

Each module imports its third-party library lazily (on first use of the module), so importing
``netra_resilience`` never needs FastAPI, httpx, openai, redis or SQLAlchemy to be installed.
In the repository these files live in the top-level ``integrations/`` folder; installed, they are
``netra_resilience.integrations``.
"""
