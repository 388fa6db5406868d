"""Demo-only fault switches: ``/demo/faults`` over HTTP, mounted only in demo mode.

Each dependency's calls pass through a chaos strategy fed by one :class:`ChaosControl`
(owned by the app). Outside demo mode the control is disabled (one dict lookup per call) and
these routes do not exist, so a production deployment cannot be broken from outside.
"""

from __future__ import annotations

import socket
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from netra_resilience.chaos import ChaosControl

FaultName = Literal["error", "latency", "rate_limit", "malformed", "dns"]

DEPENDENCIES = (
    "llm",
    "llm_stream",
    "tool",
    "redis",
    "database",
    "auth",
    "analytics",
    "monitoring",
    "discovery",
)


class InjectedFailure(ConnectionError):
    """What an ``error`` fault raises: like a refused connection (transient)."""


class InjectedRateLimit(Exception):
    """What a ``rate_limit`` fault raises: an upstream 429 with ``Retry-After``."""

    transient = True
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fault(BaseModel):
    """``{"kind": "error"}``, ``{"kind": "latency", "seconds": 3}``, ``{"kind": "rate_limit",
    "seconds": 2}``, ``{"kind": "malformed"}`` (LLM), ``{"kind": "dns"}`` (discovery)."""

    kind: FaultName = "error"
    seconds: float = Field(default=1.0, gt=0, le=600)
    rate: float = Field(default=1.0, ge=0, le=1)
    message: str = Field(default="", max_length=200)


MALFORMED = {"error": "<html>502 Bad Gateway</html>"}
"""What a ``malformed`` fault answers instead of a completion (a proxy's error page)."""


def apply(control: ChaosControl, dependency: str, fault: Fault) -> None:
    """Turn ``fault`` on for ``dependency`` (replacing what was there)."""
    control.clear(dependency)
    text = fault.message or f"{dependency} unavailable (injected)"
    if fault.kind == "latency":
        control.inject_latency(dependency, fault.seconds, rate=fault.rate)
    elif fault.kind == "rate_limit":
        seconds = fault.seconds
        control.inject_exception(
            dependency, lambda: InjectedRateLimit(text, seconds), rate=fault.rate
        )
    elif fault.kind == "malformed":
        control.inject_result(dependency, MALFORMED, rate=fault.rate)
    elif fault.kind == "dns":
        control.inject_exception(
            dependency,
            lambda: socket.gaierror(socket.EAI_AGAIN, f"{text}: name resolution failed"),
            rate=fault.rate,
        )
    else:
        control.inject_exception(dependency, lambda: InjectedFailure(text), rate=fault.rate)


def faults_router(control: ChaosControl) -> APIRouter:
    """``GET /demo/faults``, ``POST /demo/faults/{dependency}``, ``DELETE`` one or all."""
    router = APIRouter(prefix="/demo/faults", tags=["demo"])

    def listing() -> dict[str, Any]:
        return {
            name: [{"kind": f.kind, "rate": f.rate, "seconds": f.seconds} for f in faults]
            for name in DEPENDENCIES
            if (faults := control.faults(name))
        }

    @router.get("")
    async def list_faults() -> dict[str, Any]:
        return {"dependencies": list(DEPENDENCIES), "active": listing()}

    @router.post("/{dependency}")
    async def set_fault(dependency: str, request: Request) -> dict[str, Any]:
        if dependency not in DEPENDENCIES:
            raise HTTPException(404, f"unknown dependency; one of {', '.join(DEPENDENCIES)}")
        raw = await request.body()  # any Content-Type: `curl -d '{...}'` sends a form type
        try:
            fault = Fault.model_validate_json(raw) if raw.strip() else Fault()
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_input=False)) from None
        apply(control, dependency, fault)
        return {"active": listing()}

    @router.delete("/{dependency}")
    async def clear_fault(dependency: str) -> dict[str, Any]:
        control.clear(dependency)
        return {"active": listing()}

    @router.delete("")
    async def clear_all() -> dict[str, Any]:
        control.clear()
        return {"active": listing()}

    return router
