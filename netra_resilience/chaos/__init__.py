"""Chaos: inject latency, exceptions or results per dependency, switched at run time."""

from netra_resilience.chaos._control import ChaosControl, ChaosFault, FaultKind
from netra_resilience.chaos._options import ChaosOptions
from netra_resilience.chaos._strategy import ChaosStrategy

__all__ = [
    "ChaosControl",
    "ChaosFault",
    "ChaosOptions",
    "ChaosStrategy",
    "FaultKind",
]
