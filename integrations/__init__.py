"""Adapters between netra-resilience and third-party libraries.

Each module imports its third-party library lazily (on first use of the module), so importing
``netra_resilience`` never needs FastAPI, httpx, openai, redis or SQLAlchemy to be installed.
In the repository these files live in the top-level ``integrations/`` folder; installed, they are
``netra_resilience.integrations``.
"""

from __future__ import annotations


def missing_extra(extra: str, error: ImportError) -> ImportError:
    """The ImportError to raise when an adapter's library is missing: it says the fix."""
    return ImportError(
        f"this netra_resilience adapter needs {error.name or 'a library'}: "
        f'pip install "netra-resilience[{extra}]"',
        name=error.name,
    )
