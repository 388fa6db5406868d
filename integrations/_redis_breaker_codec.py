"""Arguments for, and answers from, the breaker's Lua script (Redis returns bytes or ints)."""

from __future__ import annotations

from typing import Any

from netra_resilience.circuit_breaker import (
    CircuitPolicy,
    CircuitSnapshot,
    CircuitState,
    CircuitStateChange,
    HealthInfo,
    Permit,
)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def optional_float(value: Any) -> float | None:
    decoded = text(value)
    return float(decoded) if decoded else None


def health(tp: Any, fl: Any, sl: Any) -> HealthInfo:
    return HealthInfo.of(int(float(text(tp))), int(float(text(fl))), int(float(text(sl))))


def local_epoch(epoch: int) -> int:
    """Permits from the local fallback carry negative epochs, so ``record`` routes them back."""
    return -1 - epoch


def script_args(op: str, now: str, policy: CircuitPolicy, ttl: int, *args: Any) -> list[Any]:
    """ARGV in the order the script reads it; ``now`` is ``''`` to use Redis ``TIME``."""
    return [
        op,
        now,
        repr(policy.failure_ratio),
        policy.effective_minimum_throughput,
        repr(policy.sampling_duration),
        policy.window,
        policy.window_size,
        repr(policy.slow_call_ratio),
        repr(policy.break_duration),
        policy.permitted_calls_in_half_open,
        repr(policy.half_open_max_wait),
        ttl,
        *args,
    ]


def decode_changes(key: str, raw: list[Any]) -> tuple[CircuitStateChange, ...]:
    return tuple(
        CircuitStateChange(
            key,
            CircuitState(text(old)),
            CircuitState(text(new)),
            text(reason),
            health(tp, fl, sl),
            int(epoch),
            optional_float(duration),
            int(text(attempts)),
            text(failure) or None,
        )
        for old, new, reason, tp, fl, sl, epoch, duration, attempts, failure in raw
    )


def decode_permit(key: str, raw: list[Any]) -> Permit:
    admitted, state, epoch, retry_after, changes = raw
    return Permit(
        bool(admitted),
        CircuitState(text(state)),
        int(epoch),
        optional_float(retry_after),
        decode_changes(key, changes),
    )


def decode_snapshot(raw: list[Any]) -> CircuitSnapshot:
    _, state, _, retry_after, _, tp, fl, sl, failure = raw
    return CircuitSnapshot(
        CircuitState(text(state)),
        optional_float(retry_after),
        health(tp, fl, sl),
        text(failure) or None,
    )
