"""LLM requests: what a call asks for, its cache key, how its failures are classified."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from netra_resilience.cache import KeyEncoder, quote_json
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import ExecutionRejectedError, NetraError, TimeoutRejectedError
from netra_resilience.hints import RetryAfterHint, parse_retry_after_headers, retry_after_of
from netra_resilience.outcome import Outcome
from netra_resilience.pipeline import Pipeline
from netra_resilience.predicates import OutcomePredicate


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """The keyword arguments of one LLM call and which API they are for.

    ``kind`` names the API (``"chat"`` for chat completions, ``"responses"``); ``params`` are the
    keyword arguments exactly as the caller passed them. Being the first positional argument
    of the call a pipeline runs, it is what a cache key function and a fallback chain read, so
    every alternate receives the same request the primary got.
    """

    kind: str
    params: Mapping[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.params.get("stream"))

    @property
    def model(self) -> str | None:
        model = self.params.get("model")
        return model if isinstance(model, str) else None

    @property
    def stateful(self) -> bool:
        """It changes state kept by the provider, so a replay is not a plain re-read: a
        Responses call that continues a chain or a conversation (``previous_response_id``,
        ``conversation``) or asks explicitly to be stored (``store=True``), as the OpenAI
        Agents SDK treats them. Chat completions are reads."""
        if self.kind != "responses":
            return False
        params = self.params
        return bool(
            params.get("previous_response_id")
            or params.get("conversation")
            or params.get("conversation_id")
            or params.get("store") is True
        )

    def with_params(self, **overrides: Any) -> LlmRequest:
        """A copy with some parameters replaced (e.g. another ``model``)."""
        return LlmRequest(self.kind, {**self.params, **overrides})


def request_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> LlmRequest | None:
    """Find the :class:`LlmRequest` among a call's arguments, if there is one."""
    for value in args:
        if isinstance(value, LlmRequest):
            return value
    for value in kwargs.values():
        if isinstance(value, LlmRequest):
            return value
    return None


class StreamTruncatedError(NetraError):
    """A stream ended before its terminal event: the answer the caller holds is incomplete.

    Raised by the stream wrapper instead of ending cleanly, so an agent can never mistake a
    cut-off answer for a whole one. ``chunks`` is how many chunks already reached the caller;
    once it is above zero nothing may be retried or replaced (the caller has seen them), which
    is why the error says ``transient = False`` then. ``reason`` is one of ``"error"`` (the
    transport or provider failed mid-way; see ``__cause__``), ``"idle_timeout"``,
    ``"incomplete"`` (the body ended without a terminal event) or ``"provider_error"`` (the
    provider sent an error event).
    """

    def __init__(
        self,
        message: str = "stream truncated",
        *,
        reason: str,
        chunks: int,
        dependency: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.chunks = chunks
        self.dependency = dependency
        # Before the first chunk reached the caller the whole call may still be retried.
        self.transient = chunks == 0


class FirstTokenTimeoutError(TimeoutRejectedError):
    """No content chunk arrived within the time-to-first-token limit (retryable)."""


class StreamIdleTimeoutError(TimeoutRejectedError):
    """No chunk arrived within the idle limit after the stream had started (the cause of a
    :class:`StreamTruncatedError` with ``reason="idle_timeout"``)."""


NON_OUTPUT_PARAMS = frozenset(
    {
        "timeout",
        "extra_headers",  # transport headers (may hold credentials): never in a key
        "idempotency_key",
        "user",  # end-user id for abuse tracking; isolation comes from the context's scope
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "metadata",
        "store",
        "service_tier",
    }
)
"""Parameters left out of the key: they never change the generated answer."""

_FLOAT_PARAMS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})

LlmCacheKey = Callable[[ResilienceContext, tuple[Any, ...], dict[str, Any]], str | None]


_PLAIN = frozenset({str, list, dict, int, float, bool, type(None), tuple})


def _is_sentinel(value: Any) -> bool:
    # openai's NOT_GIVEN / omit (and their look-alikes in other Stainless SDKs): not sent.
    kind = type(value)
    return kind not in _PLAIN and kind.__name__ in ("NotGiven", "Omit") and not value


def normalize_params(params: Mapping[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    """Drop ignored parameters and unsent sentinels; make equal numbers hash equal."""
    skip = frozenset(ignore)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in skip or _is_sentinel(value):
            continue
        if name in _FLOAT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            out[name] = float(value)  # temperature=1 and temperature=1.0 answer alike
        else:
            out[name] = value
    return out


def _request_text(
    encoder: KeyEncoder, kind: str, params: Mapping[str, Any], skip: frozenset[str]
) -> str:
    """``encoder.text(kind, normalize_params(params, skip))`` without the copy of ``params``."""
    try:
        names = sorted(params)
    except TypeError:  # keys of mixed types: whatever the canonical JSON says of them
        return encoder.text(kind, normalize_params(params, skip))
    out = ["[", quote_json(kind), ",{"]
    write = encoder.write
    first = True
    for name in names:
        if name in skip:
            continue
        value = params[name]
        if type(name) is not str:
            return encoder.text(kind, normalize_params(params, skip))
        if _is_sentinel(value):
            continue
        if first:
            first = False
        else:
            out.append(",")
        out.append(quote_json(name))
        out.append(":")
        if name in _FLOAT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # temperature=1 and temperature=1.0 answer alike
        write(value, out)
    out.append("}]")
    return "".join(out)


def make_llm_cache_key(
    *,
    ignore: Iterable[str] = NON_OUTPUT_PARAMS,
    cache_streams: bool = False,
    memo_chars: int = 1_000_000,
) -> LlmCacheKey:
    """A ``CacheOptions.key`` for LLM calls.

    The call's :class:`LlmRequest` (or, for a plain ``pipeline.execute(fn, *args, **params)``,
    all its arguments, positional and keyword) is normalised into canonical text with its API
    kind (:class:`~netra_resilience.cache.KeyEncoder`: JSON, each string of
    ``LONG_TEXT`` characters or more as its SHA-256, remembered for up to ``memo_chars``
    characters, so a long prompt or history sent again is not hashed again). Not hashed
    here: :class:`~netra_resilience.cache.CacheStrategy` hashes it once, with the namespace
    and caller scope, so prompts never reach a backend's key names.
    Streaming requests bypass the cache unless ``cache_streams`` (a stream is not a value
    that can be stored).
    """
    skip = frozenset(ignore)
    encoder = KeyEncoder(max_chars=memo_chars)

    def key(
        context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        request = request_of(args, kwargs)
        if request is None:
            # A plain callable: every argument can change the answer, positional ones too.
            if not cache_streams and kwargs.get("stream"):
                return None
            return encoder.text("call", list(args), normalize_params(kwargs, skip))
        params = request.params
        if not cache_streams and params.get("stream"):
            return None
        return _request_text(encoder, request.kind, params, skip)

    return key


llm_cache_key: LlmCacheKey = make_llm_cache_key(memo_chars=0)
"""The default LLM cache key (see :func:`make_llm_cache_key`), shared process-wide, so it
remembers no prompt; the LLM preset gives each pipeline a key of its own that does."""


_TRANSIENT_STATUSES = frozenset({408, 409, 429})

# Base-class names shared by the SDK families we meet under agent stacks: openai and anthropic
# (``APIConnectionError`` -> ``APITimeoutError``; strict-mode ``APIResponseValidationError``),
# httpx and httpx2 (``TransportError`` covers connect/read/write errors, protocol errors and
# their ``TimeoutException``s). Matching names keeps those libraries optional.
_TRANSIENT_CLASS_NAMES = frozenset(
    {"APIConnectionError", "APITimeoutError", "APIResponseValidationError", "TransportError"}
)


def is_transient_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """HTTP 408, 409, 429 and 5xx are transient; ``x-should-retry`` overrides the status."""
    if headers is not None:
        flag = headers.get("x-should-retry")
        if flag == "true":
            return True
        if flag == "false":
            return False
    return status in _TRANSIENT_STATUSES or status >= 500


# The error types of an Anthropic-style error body (``{"type": "error", "error": {"type":
# ...}}``) and the status each stands for. An error event inside a 200 stream carries no
# status of its own (the SDK raises it with the stream's 200): its type says what happened.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_body_type(exc: BaseException) -> str | None:
    """``error.type`` of an SDK error's parsed body (anthropic: ``overloaded_error``)."""
    body = getattr(exc, "body", None)
    inner = body.get("error") if isinstance(body, dict) else None
    kind = inner.get("type") if isinstance(inner, dict) else None
    return kind if isinstance(kind, str) else None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK error stands for: its ``status_code``, or for an error event
    inside a successful stream (status below 400) the status its body's error type means."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    if status < 400:
        return _ERROR_TYPE_STATUS.get(error_body_type(exc) or "", status)
    return status


def _headers_of(exc: BaseException) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def is_transient_failure(exc: BaseException) -> bool:
    """True when retrying ``exc`` (an attempt's failure) may succeed.

    * our own rejections are not (an open breaker, a full bulkhead), except timeouts;
    * an explicit boolean ``transient`` attribute decides when present;
    * an integer ``status_code`` decides by :func:`is_transient_status` (an error event in
      a 200 stream by its body's error type: ``overloaded_error`` is a 529);
    * connection errors, timeouts, and a body that does not parse as JSON are transient;
    * everything else (4xx, programming errors) is not.
    """
    if not isinstance(exc, Exception):
        return False  # CancelledError and friends are never retried
    if isinstance(exc, ExecutionRejectedError):
        return isinstance(exc, TimeoutRejectedError)
    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    status = status_of(exc)
    if status is not None:
        return is_transient_status(status, _headers_of(exc))
    if isinstance(exc, ConnectionError | TimeoutError | json.JSONDecodeError):
        return True
    return any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(exc).__mro__)


def _transient_outcome(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return exc is not None and is_transient_failure(exc)


TRANSIENT_LLM_FAILURE = OutcomePredicate(
    _transient_outcome, "transient LLM/HTTP failure", exceptions_only=True
)
"""Retry predicate for LLM and HTTP calls (see :func:`is_transient_failure`)."""


def server_delay(headers: Mapping[str, str] | None, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, then ``Retry-After``)."""
    if headers is None:
        return None
    return parse_retry_after_headers(headers, clock.now())


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_OPENAI_LIMITS = ("requests", "tokens")
_ANTHROPIC_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
MAX_RATE_LIMIT_DELAY = 3600.0  # a reset further away than this is malformed, not a plan


def _reset_seconds(value: str, now: datetime) -> float | None:
    """``6m0s`` / ``20ms`` / ``1.5s`` (openai) or an RFC 3339 time (anthropic), bounded."""
    text = value.strip()
    if not text or len(text) > 40:
        return None
    if text[0].isdigit() and not text[:4].isdigit():  # a duration, not a year
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        seconds = sum(float(n) * _DURATION_SCALE[u] for n, u in parts)
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if not 0.0 < seconds <= MAX_RATE_LIMIT_DELAY:
        return None
    return seconds


def rate_limit_delay(
    headers: Mapping[str, str] | None, clock: Clock = SYSTEM_CLOCK
) -> float | None:
    """Seconds until a provider limit that is already spent resets, read from a *successful*
    response's headers (openai ``x-ratelimit-remaining-requests/-tokens`` with
    ``x-ratelimit-reset-*``; anthropic ``anthropic-ratelimit-*-remaining`` / ``-reset``), so
    the limiter pauses before the next call earns a 429. ``None`` while quota remains."""
    if headers is None:
        return None
    now = clock.now()
    waits = []
    names = [(f"x-ratelimit-remaining-{k}", f"x-ratelimit-reset-{k}") for k in _OPENAI_LIMITS]
    names += [
        (f"anthropic-ratelimit-{k}-remaining", f"anthropic-ratelimit-{k}-reset")
        for k in _ANTHROPIC_LIMITS
    ]
    for remaining, reset in names:
        left = headers.get(remaining)
        if left is None or left.strip() != "0":
            continue
        seconds = _reset_seconds(headers.get(reset) or "", now)
        if seconds is not None:
            waits.append(seconds)
    return max(waits) if waits else None


def report_rate_limit(pipeline: Pipeline | None, seconds: float | None) -> None:
    """Pause every rate limiter (and the shared pause gate) of ``pipeline`` for ``seconds``:
    the provider said its quota is spent, so callers wait (or fall back) instead of a 429."""
    if pipeline is None or seconds is None:
        return
    for strategy in pipeline.strategies:
        limiter = getattr(strategy, "limiter", None) if strategy.kind == "rate_limiter" else None
        if limiter is not None:
            limiter.pause(seconds)


def llm_retry_after(clock: Clock | None = None) -> RetryAfterHint:
    """A :data:`RetryAfterHint` for LLM/HTTP failures, reading HTTP-dates on ``clock``.

    A ``retry_after`` attribute (our ``UpstreamStatusError``) wins; otherwise the headers of
    the exception's ``response`` (openai's ``APIStatusError``) are parsed; on a success whose
    result carries ``headers`` (an HTTP response), a spent provider limit
    (:func:`rate_limit_delay`) is a hint too.
    """
    source = clock or SYSTEM_CLOCK
    headers_of = AttributeRead("headers")

    def hint(outcome: Outcome[Any]) -> float | None:
        exc = outcome.exception
        if exc is None:
            # A success whose headers say a provider limit is spent (transport level).
            headers = headers_of(outcome.result)
            return rate_limit_delay(headers, source) if isinstance(headers, Mapping) else None
        seconds = retry_after_of(outcome)
        if seconds is not None:
            return seconds
        if isinstance(exc, ExecutionRejectedError):
            return None
        return server_delay(_headers_of(exc), source)

    return hint


def keeps_extras(cls: type) -> bool:
    """A pydantic v2 model type (undeclared fields in ``__pydantic_extra__``, ``None`` when
    extras are ignored)."""
    declared = getattr(cls, "__pydantic_fields__", None)
    return isinstance(declared, dict) and any(
        "__pydantic_extra__" in getattr(base, "__slots__", ()) for base in cls.__mro__
    )


class AttributeRead:
    """``getattr(obj, name, None)``, worked out once per type: for a pydantic model that does
    not declare ``name`` (an SDK answer's ``headers``) a look in its extras, where pydantic's
    ``__getattr__`` would find it, instead of that ``__getattr__`` raising on every call."""

    __slots__ = ("_extra", "_name", "_type")

    def __init__(self, name: str) -> None:
        self._name = name
        self._type: type = type(None)
        self._extra = False

    def __call__(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is not self._type:
            declared = getattr(kind, "__pydantic_fields__", None)
            name = self._name
            self._extra = (
                isinstance(declared, dict)
                and name not in declared
                and not hasattr(kind, name)
                and keeps_extras(kind)
            )
            self._type = kind
        if self._extra:
            try:
                extra = obj.__pydantic_extra__
            except AttributeError:  # built without its extras (model_construct)
                return getattr(obj, self._name, None)
            return extra.get(self._name) if extra else None
        return getattr(obj, self._name, None)


def _breaker_failure(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    if exc is None:
        return False
    # A stream cut after its first chunk is not retryable, but it is the dependency failing.
    return isinstance(exc, StreamTruncatedError) or is_transient_failure(exc)


def _dependency_failure(outcome: Outcome[Any]) -> bool:
    exc = outcome.exception
    return isinstance(exc, ExecutionRejectedError) or _breaker_failure(outcome)


LLM_BREAKER_FAILURE = OutcomePredicate(
    _breaker_failure, "LLM dependency failure", exceptions_only=True
)
"""Breaker predicate: transient failures plus streams truncated mid-way (never a 4xx)."""

LLM_DEPENDENCY_FAILURE = OutcomePredicate(
    _dependency_failure, "LLM unavailable", exceptions_only=True
)
"""Fallback/stale-cache predicate: the dependency failed or the pipeline refused the call
(open breaker, timeout, rate limit, full bulkhead). A 4xx is the caller's to see."""


async def _failed(context: ResilienceContext, state: Any) -> Outcome[Any]:
    return Outcome(None, state)


async def report_failure(
    pipeline: Pipeline | None, error: BaseException, context: ResilienceContext | None = None
) -> None:
    """Count ``error`` as a failed call in every closed/half-open breaker of ``pipeline``.

    The replay runs in a throw-away context: it must not mark the request's degradation (the
    caller already marks the truncation itself).
    """
    if pipeline is None:
        return
    for strategy in pipeline.strategies:
        if strategy.kind != "circuit_breaker":
            continue
        if str(getattr(strategy, "state", "")) in ("open", "isolated"):
            continue  # already refusing calls: nothing to learn
        key = context.operation_key if context is not None else pipeline.name
        await strategy.execute(_failed, ResilienceContext(key), error)
