"""``RunResult`` and the public (safe) description of a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netra_resilience.engine._delivery import DeliveryStats
from netra_resilience.engine._types import RunStatus

FAILED_MESSAGE = "The agent could not complete this run."
CANCELLED_MESSAGE = "The run was cancelled."


def public_error(exc: BaseException) -> dict[str, str]:
    """What a user may see about a failure: the exception's type name and a generic message.

    Never the message text or the traceback: those routinely carry API keys, URLs with
    tokens, prompts and internal paths.
    """
    return {"type": type(exc).__name__, "message": FAILED_MESSAGE}


def is_json_shaped(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended. The engine's exception stays here (for your logs), never in events."""

    run_id: str
    status: RunStatus
    output: Any = None
    degradation: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    events: DeliveryStats = field(default_factory=DeliveryStats)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True unless the run failed (a degraded run still answered)."""
        return self.status is not RunStatus.FAILED

    def unwrap(self) -> Any:
        """The engine's answer, or raise the engine's exception."""
        if self.exception is not None:
            raise self.exception
        return self.output
