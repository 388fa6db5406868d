"""``ChaosControl``: the application's switchboard for injecting faults per dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from netra_resilience._types import Seconds
from netra_resilience._validation import duration, ratio
from netra_resilience.exceptions import InvalidOptionsError

_OWNER = "ChaosControl"

FaultKind = Literal["latency", "exception", "result"]


@dataclass(frozen=True, slots=True)
class ChaosFault:
    """A configured fault, as reported by :meth:`ChaosControl.faults`."""

    kind: FaultKind
    rate: float
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class _Latency:
    rate: float
    seconds: float


@dataclass(frozen=True, slots=True)
class _Produce:
    rate: float
    make: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults of one dependency. Immutable: a running call keeps a consistent snapshot."""

    latency: _Latency | None = None
    exception: _Produce | None = None
    result: _Produce | None = None


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


class ChaosControl:
    """Turns faults on and off at run time, per dependency name (no globals).

    The application owns it (e.g. on ``app.state``, driven from an admin endpoint or a test)
    and passes it to :class:`ChaosOptions`. With nothing configured for a dependency, its chaos
    strategy costs one dict lookup. ``enabled = False`` switches every fault off at once while
    keeping the configuration.
    """

    __slots__ = ("_active", "_enabled", "_faults")

    def __init__(self, *, enabled: bool = True) -> None:
        self._faults: dict[str, Faults] = {}
        self._enabled = bool(enabled)
        self._active: dict[str, Faults] = self._faults if self._enabled else {}

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        # Strategies read only ``_active``: off is an empty dict, so off costs one lookup.
        self._active = self._faults if self._enabled else {}

    def inject_exception(
        self,
        dependency: str,
        error: type[BaseException] | Callable[[], BaseException],
        *,
        rate: float = 1.0,
    ) -> None:
        """Fail calls with ``error()``: an exception class or a factory, called per injection
        so every call gets a fresh instance (never one shared, ever-growing traceback)."""
        if isinstance(error, BaseException) or not callable(error):
            raise InvalidOptionsError(
                _OWNER, "error", "must be an exception class or a factory returning an exception"
            )
        self._update(dependency, exception=_Produce(self._rate(rate), error))

    def inject_latency(self, dependency: str, seconds: Seconds, *, rate: float = 1.0) -> None:
        """Delay calls by ``seconds`` on the pipeline's clock before running them."""
        delay = duration(_OWNER, "seconds", seconds)
        self._update(dependency, latency=_Latency(self._rate(rate), delay))

    def inject_result(
        self,
        dependency: str,
        value: Any = None,
        *,
        factory: Callable[[], Any] | None = None,
        rate: float = 1.0,
    ) -> None:
        """Answer calls with ``value`` (or ``factory()`` per call) without running them."""
        if factory is not None and not callable(factory):
            raise InvalidOptionsError(_OWNER, "factory", "must be callable")
        make = factory if factory is not None else _constant(value)
        self._update(dependency, result=_Produce(self._rate(rate), make))

    def clear(self, dependency: str | None = None) -> None:
        """Remove every fault of ``dependency`` (or of all dependencies)."""
        if dependency is None:
            self._faults.clear()
        else:
            self._faults.pop(dependency, None)

    def faults(self, dependency: str) -> tuple[ChaosFault, ...]:
        """What is configured for ``dependency`` (whether or not the control is enabled)."""
        current = self._faults.get(dependency)
        if current is None:
            return ()
        found: list[ChaosFault] = []
        if current.latency is not None:
            found.append(ChaosFault("latency", current.latency.rate, current.latency.seconds))
        if current.exception is not None:
            found.append(ChaosFault("exception", current.exception.rate))
        if current.result is not None:
            found.append(ChaosFault("result", current.result.rate))
        return tuple(found)

    @property
    def dependencies(self) -> tuple[str, ...]:
        return tuple(self._faults)

    @staticmethod
    def _rate(rate: float) -> float:
        return ratio(_OWNER, "rate", rate, allow_zero=True)

    def _update(self, dependency: str, **fault: Any) -> None:
        if not isinstance(dependency, str) or not dependency:
            raise InvalidOptionsError(_OWNER, "dependency", "must be a non-empty string")
        self._faults[dependency] = replace(self._faults.get(dependency, Faults()), **fault)
