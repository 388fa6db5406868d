"""Closing a result the retry throws away (Polly's dispose-on-retry)."""

from __future__ import annotations

import inspect
from contextlib import suppress
from typing import Any

from netra_resilience.outcome import Outcome


async def close_discarded(outcome: Outcome[Any]) -> None:
    """Close ``outcome.result`` before it is dropped, so an HTTP response frees its connection.

    ``aclose()`` wins over ``close()``; either may return an awaitable. Errors from closing
    are swallowed: a result we are throwing away must not fail the call. A cancel while
    awaiting ``aclose()`` still propagates.
    """
    if outcome.exception is not None or outcome.result is None:
        return
    result = outcome.result
    with suppress(Exception):
        closer = getattr(result, "aclose", None)
        if not callable(closer):
            closer = getattr(result, "close", None)
            if not callable(closer):
                return
        value = closer()
        if inspect.isawaitable(value):
            await value
