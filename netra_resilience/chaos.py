"""Chaos: inject faults per dependency at run time (errors, latency, results); one dict
lookup when switched off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from netra_resilience.context import ResilienceContext
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity
from netra_resilience.validation import Seconds, duration, ratio

if TYPE_CHECKING:
        from netra_resilience.strategy import BuildContext


_CONTROL = "ChaosControl"

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
                _CONTROL, "error", "must be an exception class or a factory returning an exception"
            )
        self._update(dependency, exception=_Produce(self._rate(rate), error))

    def inject_latency(self, dependency: str, seconds: Seconds, *, rate: float = 1.0) -> None:
        """Delay calls by ``seconds`` on the pipeline's clock before running them."""
        delay = duration(_CONTROL, "seconds", seconds)
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
            raise InvalidOptionsError(_CONTROL, "factory", "must be callable")
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
        return ratio(_CONTROL, "rate", rate, allow_zero=True)

    def _update(self, dependency: str, **fault: Any) -> None:
        if not isinstance(dependency, str) or not dependency:
            raise InvalidOptionsError(_CONTROL, "dependency", "must be a non-empty string")
        self._faults[dependency] = replace(self._faults.get(dependency, Faults()), **fault)


_OWNER = "ChaosOptions"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosOptions:
    """Inject the faults ``control`` holds for ``dependency`` (default: the pipeline name).

    Add it innermost to stand in for the dependency (a latency then trips the timeouts, an
    exception the retries and breaker), or outermost to test what callers see.
    """

    control: ChaosControl
    dependency: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.control, ChaosControl):
            raise InvalidOptionsError(_OWNER, "control", "must be a ChaosControl")
        if self.dependency is not None and (
            not isinstance(self.dependency, str) or not self.dependency
        ):
            raise InvalidOptionsError(_OWNER, "dependency", "must be a non-empty string or None")

    def create_strategy(self, build: BuildContext) -> ChaosStrategy:

        return ChaosStrategy(self.control, self.dependency or build.name, build)


class ChaosStrategy(Strategy):
    """Fault injection in the spirit of Polly's Simmy: latency first, then exception or result.

    Each fault fires when ``random() < rate``. Latency sleeps on the pipeline's clock (so a
    ``FakeClock`` test sees it and a caller's cancel interrupts it). Chaos marks no degradation
    itself: the strategies that react to the injected fault do.
    """

    __slots__ = ("_clock", "_control", "_dependency", "_random", "_telemetry")

    kind: ClassVar[str] = "chaos"

    def __init__(self, control: ChaosControl, dependency: str, build: BuildContext) -> None:
        self._control = control
        self._dependency = dependency
        self._clock = build.clock
        self._random = build.random
        self._telemetry = build.telemetry(self.kind)

    @property
    def dependency(self) -> str:
        return self._dependency

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        faults = self._control._active.get(self._dependency)
        if faults is None:
            return await callback(context, state)
        return await self._inject(faults, callback, context, state)

    async def _inject(
        self, faults: Faults, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        random = self._random
        latency = faults.latency
        if latency is not None and random() < latency.rate:
            self._emit("latency", context)
            await self._clock.sleep(latency.seconds)
        exception = faults.exception
        if exception is not None and random() < exception.rate:
            self._emit("exception", context)
            error = exception.make()
            if not isinstance(error, BaseException):
                error = TypeError(f"chaos exception factory returned {type(error).__name__}")
            if not isinstance(error, Exception):
                raise error  # CancelledError & co. keep their meaning: they propagate
            return Outcome(None, error)
        result = faults.result
        if result is not None and random() < result.rate:
            self._emit("result", context)
            return Outcome(result.make())
        return await callback(context, state)

    def _emit(self, fault: str, context: ResilienceContext) -> None:
        if self._telemetry.enabled:
            self._telemetry.emit(
                "chaos_injected",
                Severity.WARNING,
                context.operation_key,
                reason=fault,
                dependency=self._dependency,
            )

__all__ = ['ChaosControl', 'ChaosFault', 'ChaosOptions', 'ChaosStrategy', 'FaultKind']
