"""Selection strategies: which of the admitting endpoints serves the next call.

Each receives only endpoints whose breaker admits a call and that are in rotation, so a
strategy never has to know about health. All are O(n) over a handful of endpoints and
allocate nothing on the common path except the candidates list the pool hands them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

from netra_resilience.routing._member import PoolMember


class Selection(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_IN_FLIGHT = "least_in_flight"
    LATENCY_WEIGHTED = "latency_weighted"


class Selector(Protocol):
    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember: ...


class RoundRobin:
    """Rotates through the candidates; skipped (open) endpoints do not stall the rotation."""

    __slots__ = ("_cursor",)

    def __init__(self) -> None:
        self._cursor = 0

    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember:
        index = self._cursor % len(candidates)
        self._cursor = index + 1
        return candidates[index]


class LeastInFlight:
    """The candidate with the fewest calls in flight; ties rotate so load still spreads."""

    __slots__ = ("_cursor",)

    def __init__(self) -> None:
        self._cursor = 0

    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember:
        n = len(candidates)
        start = self._cursor % n
        self._cursor = start + 1
        best = candidates[start]
        for i in range(1, n):
            member = candidates[(start + i) % n]
            if member.in_flight < best.in_flight:
                best = member
        return best


class LatencyWeighted:
    """Random choice weighted by ``1 / (latency * (in_flight + 1))`` (peak-EWMA flavour).

    An endpoint with no sample yet gets the best known latency, so new or recovered
    endpoints are tried rather than starved.
    """

    __slots__ = ("_random",)

    def __init__(self, random: Callable[[], float]) -> None:
        self._random = random

    def choose(self, candidates: Sequence[PoolMember]) -> PoolMember:
        known = [m.latency for m in candidates if m.latency is not None]
        default = min(known) if known else 1.0
        weights = []
        total = 0.0
        for member in candidates:
            latency = member.latency if member.latency is not None else default
            weight = 1.0 / (max(latency, 1e-6) * (member.in_flight + 1))
            weights.append(weight)
            total += weight
        pick = self._random() * total
        for member, weight in zip(candidates, weights, strict=True):
            pick -= weight
            if pick < 0:
                return member
        return candidates[-1]


def make_selector(selection: Selection, random: Callable[[], float]) -> Selector:
    if selection is Selection.ROUND_ROBIN:
        return RoundRobin()
    if selection is Selection.LEAST_IN_FLIGHT:
        return LeastInFlight()
    return LatencyWeighted(random)
