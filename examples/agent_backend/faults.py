"""Demo-only fault switches: ``/demo/faults`` over HTTP, mounted only in demo mode.

Each dependency's calls pass a :func:`fault_point`: a pipeline holding only a chaos strategy
on the runtime's switchboard (``resilience.chaos``). Outside demo mode the switchboard is
disabled (one dict lookup per call) and these routes do not exist, so a production deployment
cannot be broken from outside.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx2
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError

from netra_resilience import Pipeline, Resilience

FaultName = Literal["error", "latency", "rate_limit", "malformed", "dns", "crash"]

DEPENDENCIES = (
    "llm",
    "llm_stream",
    "tool",
    "tool_response",
    "redis",
    "database",
    "auth",
    "analytics",
    "monitoring",
    "discovery",
    "replica",
)
CRASH = "replica"
"""The switch whose one fault, ``crash``, SIGKILLs this replica (the drill's replica_lost)."""


def fault_point(resilience: Resilience, dependency: str) -> Pipeline:
    """Where the switch ``dependency`` acts: put it around the call into the dependency."""
    return resilience.pipeline(dependency).add_chaos(control=resilience.chaos).build()


class InjectedFailure(ConnectionRefusedError):
    """What an ``error`` fault raises: a refused connection (transient, and provably before
    the request left, so even an unsafe call may be retried)."""


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
"""What a ``malformed`` fault answers instead of the dependency's result."""


def apply(resilience: Resilience, dependency: str, fault: Fault) -> None:
    """Turn ``fault`` on for ``dependency`` (replacing what was there)."""
    control = resilience.chaos
    control.clear(dependency)
    if fault.kind == "crash":  # the process dies just after answering: no shutdown at all
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGKILL)
        return
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


class FaultSwitchTransport(httpx2.AsyncBaseTransport):
    """The LLM provider's HTTP transport behind the ``llm`` and ``llm_stream`` switches.

    Faults look like what a provider does on the wire, so the openai SDK and the LLM preset
    meet them as they would in production: ``error`` is a refused connection, ``rate_limit``
    a 429 with ``Retry-After``, ``malformed`` a proxy's error page sent as JSON, ``latency`` a
    provider that takes its time; ``llm_stream`` latency stalls a stream between two chunks.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, resilience: Resilience) -> None:
        self._inner = inner
        self._calls = fault_point(resilience, "llm")
        self._chunks = fault_point(resilience, "llm_stream")

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            # object: a malformed fault answers MALFORMED instead of a response
            answer: object = await self._calls.execute(self._inner.handle_async_request, request)
        except OSError:  # InjectedFailure, a DNS failure: what a real transport raises then
            raise httpx2.ConnectError("connection failed (injected)", request=request) from None
        except InjectedRateLimit as exc:
            return httpx2.Response(
                429,
                headers={"retry-after": f"{exc.retry_after:g}"},
                json={"error": {"type": "rate_limit_exceeded", "message": "slow down"}},
                request=request,
            )
        if not isinstance(answer, httpx2.Response):
            body = MALFORMED["error"].encode()
            return httpx2.Response(
                200, headers={"content-type": "application/json"}, content=body, request=request
            )
        stream = answer.stream
        if answer.headers.get("content-type", "").startswith("text/event-stream") and isinstance(
            stream, httpx2.AsyncByteStream
        ):
            return httpx2.Response(
                answer.status_code,
                headers=answer.headers,
                stream=_StallBetweenChunks(stream, self._chunks),
                request=request,
                extensions=answer.extensions,
            )
        return answer

    async def aclose(self) -> None:
        await self._inner.aclose()


class _StallBetweenChunks(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, switch: Pipeline) -> None:
        self._inner = inner
        self._switch = switch

    async def __aiter__(self) -> AsyncIterator[bytes]:
        first = True
        async for part in self._inner:
            if not first:  # the first chunk gets through: the stream has started
                await self._switch.execute(_nothing)
            first = False
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _nothing() -> None:
    return None


def faults_router(resilience: Resilience) -> APIRouter:
    """``GET /demo/faults``, ``POST /demo/faults/{dependency}``, ``DELETE`` one or all."""
    router = APIRouter(prefix="/demo/faults", tags=["demo"])
    control = resilience.chaos

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
        if (fault.kind == "crash") != (dependency == CRASH):
            raise HTTPException(422, f"{CRASH!r} takes the fault kind 'crash', and only it")
        apply(resilience, dependency, fault)
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
