"""Side effects of repeating a call: effect classes, idempotency keys, "outcome unknown".

A retry, a hedge or a resumed run repeats a call. Whether that is safe depends on what the
call does upstream, which only its author knows, so each call declares an :class:`Effect`:

* ``read``: no side effect; repeat freely (retry, hedge).
* ``idempotent``: a side effect that the upstream applies once per idempotency key, so it may
  be repeated *with the same key* (Stripe's ``Idempotency-Key`` contract).
* ``unsafe``: repeated only when the failure provably happened before the request left
  (:attr:`FailureStage.NOT_SENT`). Undeclared work is treated as unsafe.

:func:`failure_stage` tells where an attempt failed: before the request left (connection
refused, DNS failure, a local limiter/breaker/bulkhead refusal, an HTTP 429 or 503, which the
upstream did not process), after it may have reached the upstream with no answer (a timeout,
a reset: the outcome is unknown), or with an answer (any other failure).

:func:`effect_scope` declares the effect of the work run inside it. Every retry strategy
consults :func:`repeat_allowed` before repeating an attempt, so the rule holds in nested
pipelines too (a tool's HTTP transport never retries what the tool may not repeat), and the
HTTP transports send the scope's key as the ``Idempotency-Key`` header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from netra_resilience.exceptions import ExecutionRejectedError, TimeoutRejectedError
from netra_resilience.outcome import Outcome

__all__ = [
    "IDEMPOTENCY_HEADER",
    "Effect",
    "EffectScope",
    "FailureStage",
    "bind_effect_scope",
    "current_effect_scope",
    "derive_idempotency_key",
    "effect_scope",
    "failure_stage",
    "repeat_allowed",
    "unbind_effect_scope",
    "valid_idempotency_key",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The request header of the IETF httpapi draft (and Stripe, Adyen, PayPal, ...)."""


class Effect(StrEnum):
    """What repeating a call does upstream."""

    READ = "read"
    IDEMPOTENT = "idempotent"
    UNSAFE = "unsafe"

    @property
    def allows_hedging(self) -> bool:
        """A second concurrent attempt is harmless (``read``) or deduplicated (``idempotent``)."""
        return self is not Effect.UNSAFE

    @property
    def needs_key(self) -> bool:
        """Repeating it is safe only with the same idempotency key."""
        return self is not Effect.READ


class FailureStage(StrEnum):
    """Where an attempt failed, as far as the caller can tell."""

    NOT_SENT = "not_sent"
    """Provably before the upstream processed anything: repeating cannot duplicate an effect."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The request may have reached the upstream and no answer came (timeout, reset)."""
    ANSWERED = "answered"
    """The upstream answered with a failure, or the code failed on its own: whatever it did
    happened; repeating it repeats that."""


# Statuses the upstream sends *instead of* processing a request (RFC 6585 §4, RFC 9110 §15.6.4).
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
# A gateway that gave up waiting for the origin: the origin may still have done the work.
_UNKNOWN_STATUSES = frozenset({504})

# Exception classes (matched by name anywhere in the MRO, so no client library is imported)
# raised before a request left: httpx/httpx2 connect and pool errors, aiohttp/urllib3
# connector and resolution errors.
_NOT_SENT_NAMES = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "PoolTimeout",
        "ClientConnectorError",
        "ClientConnectorDNSError",
        "NewConnectionError",
        "NameResolutionError",
        "gaierror",
        "ConnectionRefusedError",
    }
)
# Raised once the request may have been (partly) sent: read/write timeouts and errors, a
# server that hung up, an SDK's timeout wrapper.
_UNKNOWN_NAMES = frozenset(
    {
        "TimeoutException",
        "ReadTimeout",
        "WriteTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "IncompleteRead",
        "APITimeoutError",
    }
)
# Generic wrappers whose cause says more (openai's APIConnectionError wraps httpx's error).
_WRAPPER_NAMES = frozenset({"APIConnectionError", "TransportError", "NetworkError"})
_MAX_CAUSES = 4


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    return None


def _stage_by_name(exc: BaseException) -> FailureStage | None:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _NOT_SENT_NAMES:
        return FailureStage.NOT_SENT
    if names & _UNKNOWN_NAMES or isinstance(exc, TimeoutError | ConnectionError):
        return FailureStage.OUTCOME_UNKNOWN
    return None


def failure_stage(exc: BaseException) -> FailureStage:
    """Where ``exc`` (an attempt's failure) happened; see :class:`FailureStage`.

    In order: a boolean ``request_sent`` attribute decides (``False`` is :attr:`NOT_SENT`);
    our own rejections are :attr:`NOT_SENT` (the call never started), except an attempt
    timeout (it fired while the call was in flight); an HTTP status (``status_code``, or
    ``response.status_code``) of 429/503 is :attr:`NOT_SENT`, 504 unknown, any other
    answered; connect/DNS errors are :attr:`NOT_SENT`; timeouts, resets and other connection
    errors are unknown; a generic wrapper is judged by its cause; everything else answered.
    """
    current: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if current is None:
            break
        sent = getattr(current, "request_sent", None)
        if sent is False:
            return FailureStage.NOT_SENT
        if isinstance(current, ExecutionRejectedError):
            if isinstance(current, TimeoutRejectedError):
                return FailureStage.OUTCOME_UNKNOWN
            return FailureStage.NOT_SENT if sent is None else FailureStage.OUTCOME_UNKNOWN
        status = _status_of(current)
        if status is not None:
            if status in _NOT_PROCESSED_STATUSES:
                return FailureStage.NOT_SENT
            if status in _UNKNOWN_STATUSES:
                return FailureStage.OUTCOME_UNKNOWN
            return FailureStage.ANSWERED
        stage = _stage_by_name(current)
        if stage is FailureStage.NOT_SENT and sent is True:
            stage = FailureStage.OUTCOME_UNKNOWN
        if stage is not None:
            return stage
        if not any(cls.__name__ in _WRAPPER_NAMES for cls in type(current).__mro__):
            break
        current = current.__cause__ or current.__context__
    return FailureStage.ANSWERED


def _result_status(result: Any) -> int | None:
    status = getattr(result, "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def valid_idempotency_key(value: object) -> bool:
    """1-255 visible ASCII characters: safe as a header value and within Stripe's limit."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def derive_idempotency_key(run_id: str, call_id: str) -> str:
    """A key for tool call ``call_id`` of run ``run_id``: the same on every attempt and when a
    run is resumed under its id; a digest, so neither id is exposed to the upstream."""
    digest = hashlib.sha256(f"{run_id}\x1f{call_id}".encode()).hexdigest()
    return f"netra-{digest[:32]}"


class EffectScope:
    """The effect and idempotency key of one logical call (see :func:`effect_scope`).

    ``request_key()`` hands out the key for each non-safe HTTP request inside one attempt:
    the first gets ``idempotency_key`` itself, later ones ``<key>.2``, ``<key>.3``, so a
    tool making two POSTs never reuses a key for different requests (Stripe refuses that)
    while a repeated attempt, making the same requests in the same order, reuses them.
    The owner calls ``begin_attempt()`` at the start of each attempt.
    """

    __slots__ = ("_requests", "call_id", "effect", "idempotency_key")

    def __init__(
        self, effect: Effect, idempotency_key: str | None = None, call_id: str = ""
    ) -> None:
        self.effect = effect if type(effect) is Effect else Effect(effect)
        self.idempotency_key = idempotency_key
        self.call_id = call_id
        self._requests = 0

    def begin_attempt(self) -> None:
        self._requests = 0

    def request_key(self) -> str | None:
        key = self.idempotency_key
        if key is None:
            return None
        self._requests += 1
        return key if self._requests == 1 else f"{key}.{self._requests}"

    def __repr__(self) -> str:
        return f"EffectScope({self.effect.value!r}, call_id={self.call_id!r})"


# Per task, like the bound ResilienceContext: asyncio copies it into the tasks a call starts,
# so concurrent tool calls never see each other's scope.
_scope: ContextVar[EffectScope | None] = ContextVar("netra_resilience_effect", default=None)


def current_effect_scope() -> EffectScope | None:
    """The scope of the call running now, if one was declared."""
    return _scope.get()


def bind_effect_scope(scope: EffectScope) -> object:
    """Make ``scope`` current without a ``with`` block (the engine's per-call fast path);
    pass the returned token to :func:`unbind_effect_scope` in a ``finally``."""
    return _scope.set(scope)


def unbind_effect_scope(token: object) -> None:
    _scope.reset(token)  # type: ignore[arg-type]


@contextmanager
def effect_scope(
    effect: Effect | str, *, idempotency_key: str | None = None, call_id: str = ""
) -> Iterator[EffectScope]:
    """Declare what repeating the work inside the block does::

        with effect_scope("idempotent", idempotency_key=order.id):
            await pipeline.execute(charge, order)     # retried with the same key

    The engine's tools open one per call (see :class:`~netra_resilience.engine.Tool`).
    """
    if idempotency_key is not None and not valid_idempotency_key(idempotency_key):
        raise ValueError("idempotency_key must be 1-255 visible ASCII characters")
    scope = EffectScope(Effect(effect), idempotency_key, call_id)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def repeat_allowed(outcome: Outcome[Any], effect: Effect | None = None) -> bool:
    """May the attempt that produced ``outcome`` be repeated under ``effect`` (default: the
    current scope's; no scope: yes, the retry's own predicate decides)?

    ``read`` and ``idempotent`` work may always be repeated (the key makes the second
    ``idempotent`` attempt a no-op upstream). ``unsafe`` work only when the failure was
    :attr:`FailureStage.NOT_SENT`, or its result is an HTTP 429/503 response.
    """
    if effect is None:
        scope = _scope.get()
        if scope is None:
            return True
        effect = scope.effect
    if effect is not Effect.UNSAFE:
        return True
    exc = outcome.exception
    if exc is None:
        return _result_status(outcome.result) in _NOT_PROCESSED_STATUSES
    return failure_stage(exc) is FailureStage.NOT_SENT
