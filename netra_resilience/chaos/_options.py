"""``ChaosOptions``: where in a pipeline faults are injected, and for which dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netra_resilience.chaos._control import ChaosControl
from netra_resilience.exceptions import InvalidOptionsError

if TYPE_CHECKING:
    from netra_resilience.chaos._strategy import ChaosStrategy
    from netra_resilience.strategy import BuildContext

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
        from netra_resilience.chaos._strategy import ChaosStrategy

        return ChaosStrategy(self.control, self.dependency or build.name, build)
