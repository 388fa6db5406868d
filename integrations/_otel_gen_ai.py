"""GenAI semantic conventions (``gen_ai.*``): the pipeline's facts, token counts, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

GEN_AI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GEN_AI_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 ... 67108864


@dataclass(frozen=True, slots=True, kw_only=True)
class GenAI:
    """GenAI semantic-convention facts about an LLM pipeline.

    ``request_model`` defaults to the call's ``model=`` keyword argument (the openai SDK's
    ``create(model=...)``), else the pipeline instance (``("llm", "gpt-4o")`` -> ``gpt-4o``).
    """

    provider: str
    """``gen_ai.provider.name``: ``openai``, ``anthropic``, ``azure.ai.openai``, ..."""
    operation: str = "chat"
    request_model: str | None = None


def token_usage(result: object) -> tuple[int | None, int | None]:
    """Input/output token counts of an openai/anthropic-shaped response, if it has them."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return None, None
    counts = []
    for names in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        value = next(
            (getattr(usage, n) for n in names if isinstance(getattr(usage, n, None), int)), None
        )
        counts.append(value)
    return counts[0], counts[1]


class GenAiMetrics:
    """The ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` histograms."""

    __slots__ = ("_duration", "_tokens")

    def __init__(self, meter: metrics.Meter) -> None:
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(GEN_AI_DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(GEN_AI_TOKEN_BUCKETS),
        )

    def record(self, elapsed: float, attributes: dict[str, Any], result: object, span: Any) -> None:
        """Record one call; its token counts also go on ``span`` (when there is one)."""
        self._duration.record(elapsed, attributes)
        input_tokens, output_tokens = token_usage(result)
        for token_type, count in (("input", input_tokens), ("output", output_tokens)):
            if count is not None:
                self._tokens.record(count, {**attributes, "gen_ai.token.type": token_type})
                if span is not None:
                    span.set_attribute(f"gen_ai.usage.{token_type}_tokens", count)
