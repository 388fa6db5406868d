"""``Outcome``: the result of one execution, a value or an exception, never raised inside."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class Outcome(Generic[T]):
    """A result or an exception. Strategies pass outcomes around instead of raising.

    ``asyncio.CancelledError`` (a ``BaseException``) is never captured in an outcome: it
    propagates so cancellation keeps its meaning.
    """

    __slots__ = ("exception", "result")

    def __init__(self, result: T | None = None, exception: BaseException | None = None) -> None:
        self.result = result
        self.exception = exception

    @property
    def succeeded(self) -> bool:
        return self.exception is None

    def unwrap(self) -> T:
        """Return the result or raise the captured exception (same object, traceback kept)."""
        if self.exception is not None:
            raise self.exception
        return cast(T, self.result)

    def __repr__(self) -> str:
        if self.exception is not None:
            return f"Outcome(exception={type(self.exception).__name__})"
        return f"Outcome(result={type(self.result).__name__})"


def outcome_of(value: Any) -> Outcome[Any]:
    """Wrap a value as an outcome, passing an existing outcome through."""
    return value if isinstance(value, Outcome) else Outcome(value)
