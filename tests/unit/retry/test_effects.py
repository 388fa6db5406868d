"""Effect classes: where an attempt failed, and which attempts a retry may repeat."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from netra_resilience import Resilience, RetryOptions, TimeoutOptions
from netra_resilience.effects import (
    Effect,
    FailureStage,
    current_effect_scope,
    derive_idempotency_key,
    effect_scope,
    failure_stage,
    repeat_allowed,
)
from netra_resilience.exceptions import (
    BrokenCircuitError,
    BulkheadRejectedError,
    RateLimitRejectedError,
    TimeoutRejectedError,
)
from netra_resilience.outcome import Outcome
from netra_resilience.testing import FakeClock, RecordingListener, advance_until_done


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class APIConnectionError(Exception):
    """Named like openai's wrapper: its cause decides."""


def _wrapped(cause: BaseException) -> APIConnectionError:
    try:
        raise APIConnectionError("connection error") from cause
    except APIConnectionError as exc:
        return exc


REQUEST = httpx.Request("POST", "http://127.0.0.1/refund")


@pytest.mark.parametrize(
    ("exc", "stage"),
    [
        (ConnectionRefusedError(111, "refused"), FailureStage.NOT_SENT),
        (socket.gaierror(socket.EAI_NONAME, "no such host"), FailureStage.NOT_SENT),
        (httpx.ConnectError("refused", request=REQUEST), FailureStage.NOT_SENT),
        (httpx.ConnectTimeout("slow handshake", request=REQUEST), FailureStage.NOT_SENT),
        (httpx.PoolTimeout("no connection free", request=REQUEST), FailureStage.NOT_SENT),
        (RateLimitRejectedError("limited"), FailureStage.NOT_SENT),
        (BrokenCircuitError("open"), FailureStage.NOT_SENT),
        (BulkheadRejectedError("full"), FailureStage.NOT_SENT),
        (StatusError(429), FailureStage.NOT_SENT),
        (StatusError(503), FailureStage.NOT_SENT),
        (_wrapped(httpx.ConnectError("refused", request=REQUEST)), FailureStage.NOT_SENT),
        (TimeoutRejectedError("attempt timed out"), FailureStage.OUTCOME_UNKNOWN),
        (TimeoutError(), FailureStage.OUTCOME_UNKNOWN),
        (ConnectionResetError(104, "reset"), FailureStage.OUTCOME_UNKNOWN),
        (httpx.ReadTimeout("stalled", request=REQUEST), FailureStage.OUTCOME_UNKNOWN),
        (httpx.RemoteProtocolError("hung up", request=REQUEST), FailureStage.OUTCOME_UNKNOWN),
        (httpx.WriteError("broken pipe", request=REQUEST), FailureStage.OUTCOME_UNKNOWN),
        (StatusError(504), FailureStage.OUTCOME_UNKNOWN),
        (_wrapped(httpx.ReadTimeout("stalled", request=REQUEST)), FailureStage.OUTCOME_UNKNOWN),
        (StatusError(500), FailureStage.ANSWERED),
        (StatusError(409), FailureStage.ANSWERED),
        (ValueError("bad input"), FailureStage.ANSWERED),
        (APIConnectionError("no cause"), FailureStage.ANSWERED),
    ],
)
def test_failure_stage(exc: BaseException, stage: FailureStage) -> None:
    assert failure_stage(exc) is stage


def test_an_explicit_request_sent_attribute_decides() -> None:
    class NotSent(Exception):
        request_sent = False

    class Sent(ConnectionRefusedError):
        request_sent = True  # e.g. refused by a second hop after the first had the request

    assert failure_stage(NotSent()) is FailureStage.NOT_SENT
    assert failure_stage(Sent()) is FailureStage.OUTCOME_UNKNOWN


def test_repeat_allowed_by_effect() -> None:
    timeout = Outcome[Any](None, TimeoutRejectedError("slow"))
    refused = Outcome[Any](None, ConnectionRefusedError())
    answered_500 = Outcome[Any](None, StatusError(500))
    response_503 = Outcome[Any](httpx.Response(503), None)
    response_500 = Outcome[Any](httpx.Response(500), None)
    for effect in (Effect.READ, Effect.IDEMPOTENT):
        assert all(repeat_allowed(o, effect) for o in (timeout, refused, answered_500))
    assert not repeat_allowed(timeout, Effect.UNSAFE)
    assert not repeat_allowed(answered_500, Effect.UNSAFE)
    assert not repeat_allowed(response_500, Effect.UNSAFE)
    assert repeat_allowed(refused, Effect.UNSAFE)
    assert repeat_allowed(response_503, Effect.UNSAFE)
    assert repeat_allowed(timeout)  # no scope declared: the retry's predicate decides
    with effect_scope("unsafe"):
        assert not repeat_allowed(timeout)
    assert Effect.READ.allows_hedging and Effect.IDEMPOTENT.allows_hedging
    assert not Effect.UNSAFE.allows_hedging


def test_keys_are_stable_distinct_and_header_safe() -> None:
    key = derive_idempotency_key("run-1", "refund-1")
    assert key == derive_idempotency_key("run-1", "refund-1")
    assert key != derive_idempotency_key("run-1", "refund-2")
    assert key != derive_idempotency_key("run-2", "refund-1")
    assert key.isascii() and key.isprintable() and " " not in key and "run-1" not in key
    with (
        pytest.raises(ValueError, match="idempotency_key"),
        effect_scope("idempotent", idempotency_key="two words"),
    ):
        pass
    with pytest.raises(ValueError), effect_scope("sometimes"):
        pass


def test_request_keys_per_attempt() -> None:
    with effect_scope(Effect.IDEMPOTENT, idempotency_key="k") as scope:
        assert current_effect_scope() is scope
        assert [scope.request_key(), scope.request_key()] == ["k", "k.2"]
        scope.begin_attempt()
        assert scope.request_key() == "k"  # the repeated attempt's first request: same key
    assert current_effect_scope() is None


async def test_concurrent_calls_keep_their_own_scope() -> None:
    seen: dict[str, Effect] = {}

    async def call(effect: Effect) -> None:
        with effect_scope(effect, call_id=effect.value):
            await asyncio.sleep(0)
            scope = current_effect_scope()
            assert scope is not None
            seen[scope.call_id] = scope.effect

    await asyncio.gather(call(Effect.READ), call(Effect.UNSAFE))
    assert seen == {"read": Effect.READ, "unsafe": Effect.UNSAFE}


def _pipeline(clock: FakeClock, listener: RecordingListener) -> Any:
    return (
        Resilience(clock=clock, telemetry=listener)
        .pipeline("upstream")
        .add_retry(RetryOptions(max_attempts=3, delay=0.1))
        .add_timeout(TimeoutOptions(timeout=1.0))
        .build()
    )


async def test_a_nested_pipeline_does_not_repeat_unsafe_work_that_may_have_landed(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline = _pipeline(clock, listener)
    calls = 0

    async def stalls() -> str:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()
        return "never"

    with effect_scope("unsafe"):
        outcome = await advance_until_done(clock, pipeline.execute_outcome(stalls))
    assert isinstance(outcome.exception, TimeoutRejectedError) and calls == 1
    (gave_up,) = listener.named("retries_exhausted")
    assert gave_up.args["reason"] == "unsafe_to_repeat"

    calls = 0
    with effect_scope("idempotent", idempotency_key="k"):
        await advance_until_done(clock, pipeline.execute_outcome(stalls))
    assert calls == 3  # with a key, every attempt may go out


async def test_unsafe_work_refused_before_sending_is_retried(
    clock: FakeClock, listener: RecordingListener
) -> None:
    pipeline = _pipeline(clock, listener)
    calls = 0

    async def refused_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError(111, "refused")
        if calls == 2:
            raise StatusError(503)
        return "sent"

    with effect_scope("unsafe"):
        assert await advance_until_done(clock, pipeline.execute(refused_once)) == "sent"
    assert calls == 3
