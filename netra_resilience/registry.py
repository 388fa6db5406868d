"""``PipelineRegistry``: one pipeline (and so one breaker, one limiter) per dependency key."""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.pipeline import Pipeline, PipelineBuilder
from netra_resilience.telemetry import TelemetryListener

K = TypeVar("K", bound=Hashable)


def _names(key: Hashable) -> tuple[str, str]:
    """``"llm"`` -> ("llm", ""); ``("llm", "gpt-4o")`` -> ("llm", "gpt-4o")."""
    if isinstance(key, tuple) and key:
        return str(key[0]), "/".join(str(part) for part in key[1:])
    return str(key), ""


class PipelineRegistry(Generic[K]):
    """Hands out one pipeline per key, built on first use with shared clock and telemetry.

    The application owns the registry (create it in your lifespan, keep it on ``app.state``);
    there is no module-level instance.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.random = random or _random.Random().random
        self.telemetry = telemetry
        self._pipelines: dict[K, Pipeline] = {}

    def builder(self, key: K) -> PipelineBuilder:
        """A builder named after ``key`` and wired to this registry's clock and telemetry."""
        name, instance = _names(key)
        return PipelineBuilder(
            name, instance=instance, clock=self.clock, random=self.random, telemetry=self.telemetry
        )

    def get_or_add(self, key: K, configure: Callable[[PipelineBuilder, K], object]) -> Pipeline:
        """Return the pipeline for ``key``, building it with ``configure(builder, key)`` once."""
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            builder = self.builder(key)
            configure(builder, key)
            pipeline = builder.build()
            self._pipelines[key] = pipeline
        return pipeline

    def add(self, key: K, pipeline: Pipeline) -> None:
        if key in self._pipelines:
            raise KeyError(f"a pipeline is already registered for {key!r}")
        self._pipelines[key] = pipeline

    def get(self, key: K) -> Pipeline | None:
        return self._pipelines.get(key)

    def __getitem__(self, key: K) -> Pipeline:
        return self._pipelines[key]

    def __contains__(self, key: object) -> bool:
        return key in self._pipelines

    def __iter__(self) -> Iterator[K]:
        return iter(self._pipelines)

    def __len__(self) -> int:
        return len(self._pipelines)

    def items(self) -> list[tuple[K, Pipeline]]:
        return list(self._pipelines.items())
