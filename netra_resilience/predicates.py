"""Predicates over an :class:`Outcome`: which exceptions or results a strategy handles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netra_resilience.exceptions import (
    ExecutionRejectedError,
    InvalidOptionsError,
    TimeoutRejectedError,
)
from netra_resilience.outcome import Outcome


class OutcomePredicate:
    """A callable ``Outcome -> bool`` that composes with ``|``."""

    __slots__ = ("_fn", "description", "exceptions_only")

    def __init__(
        self,
        fn: Callable[[Outcome[Any]], bool],
        description: str = "",
        *,
        exceptions_only: bool = False,
    ) -> None:
        self._fn = fn
        self.description = description
        self.exceptions_only = exceptions_only
        """True when it never handles a success: a strategy may skip calling it for one."""

    def __call__(self, outcome: Outcome[Any]) -> bool:
        return self._fn(outcome)

    def __or__(self, other: Callable[[Outcome[Any]], bool]) -> OutcomePredicate:
        first = self._fn

        def either(outcome: Outcome[Any]) -> bool:
            return first(outcome) or other(outcome)

        other_desc = getattr(other, "description", repr(other))
        only = self.exceptions_only and getattr(other, "exceptions_only", False) is True
        return OutcomePredicate(either, f"{self.description} | {other_desc}", exceptions_only=only)

    def __repr__(self) -> str:
        return f"OutcomePredicate({self.description})"


def handle(*exception_types: type[BaseException]) -> OutcomePredicate:
    """Handle outcomes whose exception is one of ``exception_types``."""
    if not exception_types:
        raise ValueError("handle() needs at least one exception type")
    types = tuple(exception_types)

    def matches(outcome: Outcome[Any]) -> bool:
        return isinstance(outcome.exception, types)

    description = "handle(" + ", ".join(t.__name__ for t in types) + ")"
    return OutcomePredicate(matches, description, exceptions_only=True)


def handle_result(predicate: Callable[[Any], bool]) -> OutcomePredicate:
    """Handle successful outcomes whose result satisfies ``predicate`` (e.g. HTTP 503)."""

    def matches(outcome: Outcome[Any]) -> bool:
        return outcome.exception is None and bool(predicate(outcome.result))

    return OutcomePredicate(matches, "handle_result")


def handle_exception(predicate: Callable[[BaseException], bool]) -> OutcomePredicate:
    """Handle outcomes whose exception satisfies ``predicate``."""

    def matches(outcome: Outcome[Any]) -> bool:
        return outcome.exception is not None and bool(predicate(outcome.exception))

    return OutcomePredicate(matches, "handle_exception", exceptions_only=True)


def _any_exception(outcome: Outcome[Any]) -> bool:
    return isinstance(outcome.exception, Exception)


def _transient_exception(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    if not isinstance(exc, Exception):
        return False
    # Rejections are not transient (retrying spins against an open breaker), except an
    # attempt timeout, which the next attempt may well beat.
    return not isinstance(exc, ExecutionRejectedError) or isinstance(exc, TimeoutRejectedError)


ShouldHandle = (
    Callable[[Outcome[Any]], bool] | type[BaseException] | tuple[type[BaseException], ...]
)
"""What ``should_handle=`` takes: a predicate over the outcome, an exception class, or a tuple
of them (``should_handle=ConnectionError`` is ``handle(ConnectionError)``)."""


def as_predicate(owner: str, field: str, value: object) -> Callable[[Outcome[Any]], bool]:
    """Normalise a ``should_handle``-style option; anything else names the field."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return handle(value)
    if isinstance(value, tuple):
        if value and all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
            return handle(*value)
        raise InvalidOptionsError(owner, field, "a tuple must hold exception classes only")
    if callable(value):
        return value
    kind = type(value).__name__
    raise InvalidOptionsError(
        owner, field, f"must be an exception class, a tuple of them or a predicate, got {kind}"
    )


ANY_EXCEPTION = OutcomePredicate(_any_exception, "any Exception", exceptions_only=True)
"""Default for breakers and fallbacks: any ``Exception`` (never CancelledError)."""

TRANSIENT_EXCEPTION = OutcomePredicate(
    _transient_exception, "any Exception except rejections", exceptions_only=True
)
"""Default for retries: any ``Exception`` except :class:`ExecutionRejectedError` (but timeouts)."""
