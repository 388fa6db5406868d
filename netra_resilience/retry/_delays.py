"""The delay before the next attempt: backoff (or tenacity ``wait``), hint, generator, caps."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from netra_resilience._types import to_seconds
from netra_resilience.backoff import Backoff, compute_delay
from netra_resilience.context import ResilienceContext
from netra_resilience.outcome import Outcome
from netra_resilience.retry._args import RetryDelayArgs
from netra_resilience.retry._options import DelayValue, RetryOptions
from netra_resilience.retry._tenacity import RetryCallState


def is_async(fn: object) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (decided at build time)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def _explicit(value: Any) -> float | None:
    """A hint or generated delay: ``None``, negative or NaN means "none given"."""
    if value is None:
        return None
    seconds = to_seconds(value)
    return seconds if seconds >= 0 else None  # NaN fails the comparison too


class GiveUp(Exception):  # control flow inside the retry, never escapes it
    """No further attempt: ``reason`` is ``max_attempts``, ``server_delay`` or ``stop``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class DelayPolicy:
    """Decides the sleep before the next attempt, in this order (Polly + openai rules):

    1. ``max_attempts`` reached (or, with tenacity vocabulary, ``stop`` says so after 2-4)
       -> give up;
    2. the computed delay: ``wait(state)`` if given, else the backoff, clamped by ``max_delay``;
    3. the server hint replaces it; a ``delay_generator`` number replaces both;
    4. a hinted/generated delay above ``max_server_delay`` -> give up.
    """

    __slots__ = (
        "_backoff", "_delay", "_generator", "_generator_async", "_hint", "_max_attempts",
        "_max_delay", "_max_server_delay", "_random", "_stop", "_use_jitter", "_wait",
    )  # fmt: skip

    def __init__(self, options: RetryOptions, random: Callable[[], float]) -> None:
        self._max_attempts = options.max_attempts
        self._backoff = Backoff(options.backoff)
        self._delay = to_seconds(options.delay)
        self._max_delay = to_seconds(options.max_delay)
        self._use_jitter = options.use_jitter
        self._random = random
        self._generator = options.delay_generator
        self._generator_async = is_async(options.delay_generator)
        self._hint = options.retry_after
        self._max_server_delay = to_seconds(options.max_server_delay)
        self._stop = options.stop
        self._wait = options.wait

    async def next_delay(
        self,
        *,
        context: ResilienceContext,
        state: Any,
        outcome: Outcome[Any],
        attempt: int,
        jitter: float,
        started: float,
        now: float,
        idle: float,
    ) -> tuple[float, float]:
        """``(delay, jitter state)`` after zero-based ``attempt`` failed, or raise GiveUp."""
        tenacity = None
        if self._stop is None and attempt + 1 >= self._max_attempts:
            raise GiveUp("max_attempts")
        if self._stop is not None or self._wait is not None:
            tenacity = RetryCallState(
                attempt_number=attempt + 1, outcome=outcome, start_time=started,
                outcome_timestamp=now, idle_for=idle, state=state,
            )  # fmt: skip
        if self._wait is not None:
            delay = max(to_seconds(self._wait(tenacity)), 0.0)
        else:
            delay, jitter = compute_delay(
                self._backoff, attempt, self._delay, use_jitter=self._use_jitter,
                random=self._random, previous_state=jitter, max_delay=self._max_delay,
            )  # fmt: skip
        explicit = None if self._hint is None else _explicit(self._hint(outcome))
        if self._generator is not None:
            value = self._generator(RetryDelayArgs(attempt, outcome, context, delay, explicit))
            if self._generator_async or inspect.isawaitable(value):
                value = await cast("Awaitable[DelayValue]", value)
            generated = _explicit(value)
            if generated is not None:
                explicit = generated
        if explicit is not None:
            if explicit > self._max_server_delay:
                raise GiveUp("server_delay")
            delay = explicit
        if self._stop is not None and tenacity is not None:
            tenacity.upcoming_sleep = delay
            if self._stop(tenacity):
                raise GiveUp("stop")
        return delay, jitter
