"""Per-request degraded-mode flags: *which* dependency degraded and *why*."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple


class DegradationReason(StrEnum):
    """The reasons netra-resilience itself records. Any token-shaped string is accepted too."""

    CIRCUIT_OPEN = "circuit_open"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    BULKHEAD_FULL = "bulkhead_full"
    STALE_CACHE = "stale_cache"
    CACHED = "cached"
    FALLBACK = "fallback"
    SKIPPED = "skipped"
    RETRIED = "retried"
    ERROR = "error"
    FALLBACK_MEMORY = "fallback_memory"
    FALLBACK_DATABASE = "fallback_database"
    STALE_ENDPOINTS = "stale_endpoints"
    CANNED_REPLY = "canned_reply"
    UNAVAILABLE = "unavailable"
    OUTCOME_UNKNOWN = "outcome_unknown"
    PARTIAL = "partial"
    """The answer used only part of the data (a history read from a fallback alone)."""
    NOT_STORED = "not_stored"
    """A write was accepted by no backend: the caller must tell the user."""
    SHED = "shed"
    THROTTLED = "throttled"
    RETRY_BUDGET = "retry_budget"
    LOCAL_ONLY = "local_only"
    """Kept by this process alone (a run's events while the shared event log is down)."""


MAX_HISTORY = 256
"""How many marks :attr:`Degradation.history` keeps (the oldest are dropped first)."""

_TOKEN = re.compile(r"[^A-Za-z0-9_.\-:]+")
_MAX_TOKEN = 64


@lru_cache(maxsize=4096)  # names and reasons are few; a bounded cache keeps marks cheap
def safe_token(value: str) -> str:
    """Reduce a name or reason to characters that are safe in a header and a log line.

    Whatever a caller passes (possibly upstream text), only ``[A-Za-z0-9_.-:]`` survives and
    the length is bounded, so flags can never inject header syntax or carry long payloads.
    """
    cleaned = _TOKEN.sub("_", value).strip("_")[:_MAX_TOKEN]
    return cleaned or "unknown"


class DegradationEntry(NamedTuple):
    dependency: str
    reason: str


@lru_cache(maxsize=4096)
def _entry(dependency: str, reason: str) -> DegradationEntry:
    """Entries are immutable and few: one cached lookup per mark instead of three calls."""
    return DegradationEntry(safe_token(dependency), safe_token(reason))


DegradationListener = Callable[["Degradation", DegradationEntry], None]


class Degradation:
    """Mutable record of what degraded during one request or agent run.

    One dependency has one current reason (the latest mark wins: a timeout followed by a stale
    cache answer reads ``llm=stale_cache``); :attr:`history` keeps every mark in order.
    """

    __slots__ = ("_history", "_listeners", "_reasons", "version")

    def __init__(self) -> None:
        self.version = 0
        """Rises with every change (a mark, a clear): a snapshot taken at one version holds
        until the next (a run's events share one while nothing changes)."""
        # The containers are made on the first mark / subscribe: a record is made for every
        # request and most never degrade. Three containers per request, alive for the whole
        # request, made a uvicorn server under load run its cyclic GC ~17x as often.
        self._reasons: dict[str, str] | None = None
        self._history: deque[DegradationEntry] | None = None
        self._listeners: list[DegradationListener] | None = None

    def mark(self, dependency: str, reason: str | DegradationReason) -> None:
        """Record that ``dependency`` degraded for ``reason``."""
        entry = _entry(dependency, str(reason))
        reasons, history = self._reasons, self._history
        if reasons is None or history is None:
            reasons = self._reasons = {}
            # Bounded: a long-lived, request-wide record must not grow without limit.
            history = self._history = deque(maxlen=MAX_HISTORY)
        reasons[entry.dependency] = entry.reason
        history.append(entry)
        self.version += 1
        if not self._listeners:
            return
        for listener in tuple(self._listeners):
            try:
                listener(self, entry)
            except Exception:  # a listener must never break the call that degraded
                continue

    def clear(self, dependency: str) -> None:
        if self._reasons is not None:
            self._reasons.pop(safe_token(dependency), None)
            self.version += 1

    def subscribe(self, listener: DegradationListener) -> Callable[[], None]:
        """Call ``listener`` on every mark; returns a function that unsubscribes."""
        if self._listeners is None:
            self._listeners = []
        listeners = self._listeners
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    @property
    def degraded(self) -> bool:
        return bool(self._reasons)

    def __bool__(self) -> bool:
        return bool(self._reasons)

    def __contains__(self, dependency: object) -> bool:
        return self._reasons is not None and dependency in self._reasons

    def __iter__(self) -> Iterator[str]:
        return iter(self._reasons or ())

    def __len__(self) -> int:
        return len(self._reasons) if self._reasons else 0

    def reason(self, dependency: str) -> str | None:
        return self._reasons.get(dependency) if self._reasons else None

    def as_dict(self) -> dict[str, str]:
        return dict(self._reasons) if self._reasons else {}

    @property
    def history(self) -> tuple[DegradationEntry, ...]:
        return tuple(self._history) if self._history else ()

    def header_value(self) -> str:
        """``name=reason`` pairs joined by ``", "`` (empty when nothing degraded)."""
        if not self._reasons:
            return ""
        return ", ".join(f"{name}={reason}" for name, reason in self._reasons.items())

    def __repr__(self) -> str:
        return f"Degradation({self.header_value()!r})"
