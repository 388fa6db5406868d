"""The listener protocol and the per-strategy emitter that swallows listener errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from netra_resilience.clock import Clock
from netra_resilience.telemetry._events import Severity, TelemetryEvent, TelemetrySource


@runtime_checkable
class TelemetryListener(Protocol):
    def on_event(self, event: TelemetryEvent) -> None: ...


class CompositeListener:
    """Fans one event out to several listeners, in registration order."""

    __slots__ = ("listeners",)

    def __init__(self, listeners: Sequence[TelemetryListener]) -> None:
        self.listeners = tuple(listeners)

    def on_event(self, event: TelemetryEvent) -> None:
        for listener in self.listeners:
            try:
                listener.on_event(event)
            except Exception:  # a broken listener must never break the call it observes
                continue


class Telemetry:
    """What a strategy uses to emit: knows its source; costs one attribute check when off.

    Strategies check :attr:`enabled` before building event arguments, so a pipeline without a
    listener builds no dicts on its hot path.
    """

    __slots__ = ("_clock", "_listener", "enabled", "source")

    def __init__(
        self, listener: TelemetryListener | None, source: TelemetrySource, clock: Clock
    ) -> None:
        self._listener = listener
        self._clock = clock
        self.source = source
        self.enabled = listener is not None

    def emit(self, name: str, severity: Severity, operation_key: str = "", **args: Any) -> None:
        listener = self._listener
        if listener is None:
            return
        event = TelemetryEvent(
            name, severity, self.source, operation_key, args, self._clock.monotonic()
        )
        try:
            listener.on_event(event)
        except Exception:
            return
