"""Chaos: inject latency, exceptions or results per dependency, switched at run time."""

from ._control import ChaosControl, ChaosFault, FaultKind
from ._options import ChaosOptions
from ._strategy import ChaosStrategy

__all__ = [
    "ChaosControl",
    "ChaosFault",
    "ChaosOptions",
    "ChaosStrategy",
    "FaultKind",
]
