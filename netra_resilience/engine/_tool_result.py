"""Typed tool results: the agent reasons about a failed tool instead of dying from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

from netra_resilience.exceptions import (
    BrokenCircuitError,
    BulkheadRejectedError,
    ExecutionRejectedError,
    RateLimitRejectedError,
    TimeoutRejectedError,
)
from netra_resilience.hints import retry_after_of
from netra_resilience.outcome import Outcome

T = TypeVar("T")


class ToolErrorReason(StrEnum):
    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    TIMEOUT = "timeout"
    BULKHEAD_FULL = "bulkhead_full"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN_TOOL = "unknown_tool"


_MESSAGES = {
    ToolErrorReason.RATE_LIMITED: "The tool is rate limited; try again later.",
    ToolErrorReason.CIRCUIT_OPEN: "The tool is temporarily unavailable.",
    ToolErrorReason.TIMEOUT: "The tool did not answer in time.",
    ToolErrorReason.BULKHEAD_FULL: "The tool is busy.",
    ToolErrorReason.REJECTED: "The tool call was not attempted.",
    ToolErrorReason.FAILED: "The tool call failed.",
    ToolErrorReason.UNKNOWN_TOOL: "No tool with this name is available.",
}


@dataclass(frozen=True, slots=True)
class ToolOk(Generic[T]):
    """A tool's answer."""

    tool: str
    value: T
    call_id: str = ""
    ok: ClassVar[Literal[True]] = True


@dataclass(frozen=True, slots=True)
class ToolError:
    """Why a tool gave no answer, in words safe to show a user or feed back to the LLM.

    ``message`` is generic per ``reason`` (never the exception's text, which may carry
    secrets); ``error_type`` is the exception's class name; ``retry_after`` the seconds after
    which trying again may work, when known.
    """

    tool: str
    reason: ToolErrorReason
    message: str
    retry_after: float | None = None
    error_type: str | None = None
    call_id: str = ""
    ok: ClassVar[Literal[False]] = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, e.g. the content of the tool message sent back to the model."""
        data: dict[str, Any] = {"tool": self.tool, "ok": False, "error": self.reason.value}
        data["message"] = self.message
        if self.retry_after is not None:
            data["retry_after"] = round(self.retry_after, 3)
        return data

    @classmethod
    def unknown(cls, tool: str, call_id: str = "") -> ToolError:
        reason = ToolErrorReason.UNKNOWN_TOOL
        return cls(tool, reason, _MESSAGES[reason], call_id=call_id)

    @classmethod
    def from_outcome(cls, tool: str, outcome: Outcome[Any], call_id: str = "") -> ToolError:
        exc = outcome.exception
        assert exc is not None
        if isinstance(exc, ExecutionRejectedError):
            reason = _reason_of(exc)
            retry_after = exc.retry_after
        else:
            reason = ToolErrorReason.FAILED
            retry_after = retry_after_of(outcome)  # an upstream hint (a 429's Retry-After)
        return cls(tool, reason, _MESSAGES[reason], retry_after, type(exc).__name__, call_id)


def _reason_of(exc: ExecutionRejectedError) -> ToolErrorReason:
    if isinstance(exc, RateLimitRejectedError):
        return ToolErrorReason.RATE_LIMITED
    if isinstance(exc, BrokenCircuitError):
        return ToolErrorReason.CIRCUIT_OPEN
    if isinstance(exc, TimeoutRejectedError):
        return ToolErrorReason.TIMEOUT
    if isinstance(exc, BulkheadRejectedError):
        return ToolErrorReason.BULKHEAD_FULL
    return ToolErrorReason.REJECTED


ToolResult: TypeAlias = ToolOk[Any] | ToolError
"""What ``request.tools.call(...)`` returns; ``if result.ok:`` narrows it to :class:`ToolOk`."""
