"""The exception hierarchy.

Rejections (the pipeline refused to run the call) derive from :class:`ExecutionRejectedError`
and carry ``retry_after`` (seconds until a retry may succeed, when known) and the dependency
that rejected. A fresh instance is raised for each rejection: re-raising a shared instance
would grow its ``__traceback__`` on every raise.
"""

from __future__ import annotations

import re

_TYPE_NAME = re.compile(r"[A-Za-z_][\w.:]{0,99}")  # a type name, never free text


class NetraError(Exception):
    """Base class of every error raised by netra-resilience."""


class InvalidOptionsError(NetraError, ValueError):
    """An option has an invalid value; raised at construction, naming the field."""

    def __init__(self, owner: str, field: str, message: str) -> None:
        self.owner = owner
        self.field = field
        super().__init__(f"{owner}.{field} {message}")


class ExecutionRejectedError(NetraError):
    """The pipeline rejected the call without (fully) running it."""

    default_message = "execution rejected"

    # One __init__ for the whole family (subclasses only change default_message): a rejection
    # is built on every fast-fail, so its constructor stays one level deep.
    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        dependency: str | None = None,
    ) -> None:
        # BaseException.__new__ already stored the positional message in args; skipping the
        # super().__init__ call keeps a fast-fail rejection cheap (the text is built lazily).
        self.args = (self.default_message if message is None else message,)
        self.retry_after = retry_after
        self.dependency = dependency

    def __str__(self) -> str:
        # Defined here, not inherited: TimeoutError (an OSError) would print "" for a message
        # whose OSError.__init__ never ran. Only names and numbers are added, never upstream text.
        text = str(self.args[0]) if self.args and self.args[0] else self.default_message
        details = []
        if self.dependency:
            details.append(f"dependency {self.dependency}")
        timeout = getattr(self, "timeout", None)
        if isinstance(timeout, int | float):
            details.append(f"after {timeout:g} s")
        if isinstance(self.retry_after, int | float):
            details.append(f"retry after {self.retry_after:g} s")
        opened_by = getattr(self, "opened_by", None)
        if isinstance(opened_by, str) and _TYPE_NAME.fullmatch(opened_by):
            details.append(f"opened by {opened_by}")
        return f"{text} ({', '.join(details)})" if details else text


class BrokenCircuitError(ExecutionRejectedError):
    """The circuit breaker is open (or half-open with its probe slots taken).

    ``opened_by`` names the type of the failure that opened it (never its message, which may
    carry upstream secrets); with a shared store it is known when this replica saw the opening
    or read it from the store (``refresh``), else ``None``.
    """

    default_message = "circuit is open"
    opened_by: str | None = None  # set by the breaker on the instance it returns


class IsolatedCircuitError(BrokenCircuitError):
    """The circuit breaker was isolated by hand and rejects every call until closed."""

    default_message = "circuit is isolated"


class TimeoutRejectedError(ExecutionRejectedError, TimeoutError):
    """The timeout strategy's own deadline expired (a caller's cancel stays CancelledError)."""

    default_message = "operation timed out"

    def __init__(
        self,
        message: str | None = None,
        *,
        timeout: float | None = None,
        dependency: str | None = None,
    ) -> None:
        super().__init__(message, dependency=dependency)
        self.timeout = timeout


class RateLimitRejectedError(ExecutionRejectedError):
    """The rate limiter has no permit within the allowed wait."""

    default_message = "rate limit exceeded"


class BulkheadRejectedError(ExecutionRejectedError):
    """The bulkhead is full (all seats taken and the queue full, or the queue wait timed out)."""

    default_message = "bulkhead is full"


class AdmissionRejectedError(ExecutionRejectedError):
    """Admission control shed the call: over the adaptive concurrency limit, and its priority's
    share of the queue was full (or it was displaced from the queue by a more important call,
    or its queue wait timed out). ``priority`` is the shed call's priority."""

    default_message = "call shed by admission control"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        dependency: str | None = None,
        priority: int | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, dependency=dependency)
        self.priority = priority
