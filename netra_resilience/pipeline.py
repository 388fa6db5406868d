"""``Pipeline``: strategies composed once, outermost first; ``PipelineBuilder`` collects them."""

from __future__ import annotations

import contextlib
import functools
import random as _random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from heapq import heappop, heappush, heapreplace
from typing import Any, ParamSpec, Self, TypeVar

from netra_resilience.admission import AdmissionOptions, ThrottleOptions
from netra_resilience.bulkhead import BulkheadOptions
from netra_resilience.cache import CacheOptions
from netra_resilience.chaos import ChaosOptions
from netra_resilience.circuit_breaker import CircuitBreakerOptions, CircuitBreakerStrategy
from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, _current
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.fallback import FallbackOptions
from netra_resilience.fused import Runner, stateful_parts
from netra_resilience.fused import fuse as fused_runner
from netra_resilience.hedging import HedgingOptions
from netra_resilience.outcome import Outcome
from netra_resilience.rate_limiter import RateLimiterOptions, RateLimiterStrategy
from netra_resilience.retry import RetryOptions, RetryStrategy
from netra_resilience.strategy import BuildContext, Callback, Strategy, StrategyOptions
from netra_resilience.telemetry import TelemetryListener
from netra_resilience.timeout import TimeoutOptions, TimeoutStrategy
from netra_resilience.validation import integer

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound=Strategy)


async def _invoke(context: ResilienceContext, state: Any) -> Outcome[Any]:
    """Innermost step: run the user's function and capture its result or exception."""
    fn, args, kwargs = state
    try:
        return Outcome(await fn(*args, **kwargs))
    except Exception as exc:
        return Outcome(None, exc)


class _Link:
    """Binds a strategy to the step after it, once, at build time (no per-call closures)."""

    __slots__ = ("_next", "_strategy")

    def __init__(self, strategy: Strategy, next_step: Callback) -> None:
        self._strategy = strategy  # not a bound method: 64 B less per link and pipeline
        self._next = next_step

    def __call__(self, context: ResilienceContext, state: Any) -> Awaitable[Outcome[Any]]:
        # Not async: returns the strategy's coroutine directly, saving a frame per level.
        return self._strategy.execute(self._next, context, state)


class Pipeline:
    """Runs callables through its strategies. Built by :class:`PipelineBuilder`, reused freely."""

    __slots__ = (
        "_breaker_s", "_build", "_bulkhead_s", "_ctl", "_fused", "_limiter", "_limiter_s",
        "_onion", "_seats", "_used", "instance", "name", "strategies",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        instance: str,
        strategies: tuple[Strategy, ...],
        build_context: BuildContext | None = None,
        *,
        fuse: bool = True,
        runner: Runner | None = None,
    ) -> None:
        self.name = name
        self.instance = instance
        self.strategies = strategies
        self._used = 0  # a KeyedPipelines' use stamp (its LRU)
        # ``build_context`` may be a KeyedPipelines' own (its instance is not this key's).
        self._build = build_context or BuildContext(name=name, instance=instance)
        # Chosen once: standard strategies run as one fused coroutine (``fused.py``); a
        # ``runner`` given is one already made for pipelines of this shape (KeyedPipelines).
        if runner is None and fuse:
            runner = fused_runner(name, self._build.clock, strategies)
        self._fused: Runner | None = runner
        # What the fused runner reads per pipeline: the strategies that keep state.
        parts: tuple[Any, Any, Any, Any, Any, Any] = (
            stateful_parts(strategies) if runner is not None else _NO_PARTS
        )
        (
            self._limiter_s,
            self._limiter,
            self._bulkhead_s,
            self._seats,
            self._breaker_s,
            self._ctl,
        ) = parts
        # The onion's steps, linked once; a fused pipeline links them when a call first
        # leaves the common path (most per-key pipelines never do).
        self._onion: tuple[Callback, ...] | None = None if runner is not None else self._link()

    def _link(self) -> tuple[Callback, ...]:
        """``(first step, step after strategies[0], ..., step after strategies[-1])``."""
        entry: Callback = _invoke
        steps: list[Callback] = []
        for strategy in reversed(self.strategies):
            steps.append(entry)
            entry = _Link(strategy, entry)
        steps.append(entry)
        steps.reverse()
        return tuple(steps)

    def _step(self, position: int) -> Callback:
        """The onion step after ``strategies[position]``; ``-1``: the first step."""
        onion = self._onion
        if onion is None:
            onion = self._onion = self._link()
        return onion[position + 1]

    @property
    def _entry(self) -> Callback:
        return self._step(-1)

    @property
    def build_context(self) -> BuildContext:
        """Clock, randomness and telemetry it was built with: adapters wrapping this pipeline
        (HTTP transports, the openai facade) take their clock from here."""
        build = self._build
        if build.instance != self.instance:  # a key of a KeyedPipelines: made when asked
            return replace(build, instance=self.instance)
        return build

    @property
    def fused(self) -> bool:
        """True when calls run fused (one coroutine) rather than through the onion."""
        return self._fused is not None

    async def _run(self, context: ResilienceContext | None, state: Any) -> Outcome[Any]:
        current = _current.get()
        if context is None:
            # No context given nor bound: a private one. Nobody outside this call can read
            # it, so it is not bound either (saves a ContextVar set/reset per call).
            return await self._entry(current or ResilienceContext(self.name), state)
        if context is current:
            return await self._entry(context, state)
        # Bind the context so code inside fn (an httpx transport, a nested pipeline) sees it.
        token = _current.set(context)
        try:
            return await self._entry(context, state)
        finally:
            _current.reset(token)

    def execute_outcome(
        self,
        fn: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        context: ResilienceContext | None = None,
        **kwargs: Any,
    ) -> Awaitable[Outcome[T]]:
        """Run ``fn(*args, **kwargs)`` and return its outcome instead of raising."""
        fused = self._fused
        if fused is not None:
            return fused(self, fn, args, kwargs, context, True)
        return self._run(context, (fn, args, kwargs))

    def execute(
        self,
        fn: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        context: ResilienceContext | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, T]:
        """Run ``fn(*args, **kwargs)`` through the strategies; return its result or raise.

        ``await pipeline.execute(fn, ...)``. Not ``async def`` itself: it hands back the
        fused runner's coroutine (or the onion's), one coroutine frame fewer per call.
        """
        fused = self._fused
        if fused is not None:
            return fused(self, fn, args, kwargs, context, False)  # type: ignore[return-value]
        return self._execute_onion(fn, args, kwargs, context)

    async def _execute_onion(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: ResilienceContext | None,
    ) -> T:
        if context is None:  # the common case, inlined: one coroutine frame fewer
            outcome = await self._entry(
                _current.get() or ResilienceContext(self.name), (fn, args, kwargs)
            )
        else:
            outcome = await self._run(context, (fn, args, kwargs))
        exc = outcome.exception
        if exc is not None:
            raise exc
        return outcome.result  # type: ignore[return-value]

    def wrap(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorator: every call of ``fn`` runs through this pipeline."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            fused = self._fused
            if fused is not None:
                return await fused(self, fn, args, kwargs, None, False)  # type: ignore[no-any-return]
            outcome: Outcome[T] = await self._run(None, (fn, args, kwargs))
            return outcome.unwrap()

        return wrapper

    __call__ = wrap

    def find(self, kind: type[S]) -> S | None:
        """The first strategy of the given class (e.g. the circuit breaker, for health)."""
        for strategy in self.strategies:
            if isinstance(strategy, kind):
                return strategy
        return None

    @property
    def clock(self) -> Clock:
        return self._build.clock

    def __repr__(self) -> str:
        kinds = ", ".join(s.kind for s in self.strategies)
        return f"Pipeline({self.name!r}, [{kinds}])"


_NO_PARTS = (None, None, None, None, None, None)

EMPTY_PIPELINE = Pipeline("empty", "", ())
"""A pipeline with no strategies (stateless, safe to share)."""


_OWNER = "PipelineBuilder"


class PipelineBuilder:
    """Collects strategy options; :meth:`build` turns them into an immutable :class:`Pipeline`.

    The first strategy added is the outermost. Options objects are validated when they are
    constructed, so an invalid value fails before the builder ever sees it.
    """

    def __init__(
        self,
        name: str = "pipeline",
        *,
        instance: str = "",
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        telemetry: TelemetryListener | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidOptionsError(_OWNER, "name", "must be a non-empty string")
        self._build = BuildContext(
            name=name,
            instance=instance,
            clock=clock or SYSTEM_CLOCK,
            random=random or _random.Random().random,
            listener=telemetry,
        )
        self._items: list[StrategyOptions | Strategy] = []
        self._used = False

    @property
    def name(self) -> str:
        return self._build.name

    def add(self, options: StrategyOptions) -> Self:
        """Add any options object that implements ``create_strategy(build)``."""
        if not isinstance(options, StrategyOptions):
            raise InvalidOptionsError(
                _OWNER, "add", f"{type(options).__name__} does not implement create_strategy()"
            )
        self._items.append(options)
        return self

    def add_strategy(self, strategy: Strategy) -> Self:
        """Add an already-built strategy instance (e.g. one breaker shared by two pipelines)."""
        if not isinstance(strategy, Strategy):
            raise InvalidOptionsError(
                _OWNER, "add_strategy", f"{type(strategy).__name__} is not a Strategy"
            )
        self._items.append(strategy)
        return self

    def _add_typed(
        self, method: str, kind: type[Any], options: object, fields: dict[str, Any]
    ) -> Self:
        # One shape for every add_x: its own options object, or the options' keyword fields.
        if options is None:
            return self.add(kind(**fields))
        if fields:
            raise InvalidOptionsError(
                _OWNER, method, "takes an options object or keywords, not both"
            )
        if not isinstance(options, kind):
            raise InvalidOptionsError(
                _OWNER, method, f"expects {kind.__name__}, got {type(options).__name__}"
            )
        return self.add(options)

    def add_timeout(
        self, timeout: TimeoutOptions | float | timedelta | None = None, /, **fields: Any
    ) -> Self:
        """``add_timeout(5)``, ``add_timeout(timedelta(seconds=5))`` or
        ``add_timeout(TimeoutOptions(...))``."""
        if isinstance(timeout, int | float | timedelta) and not isinstance(timeout, bool):
            return self._add_typed(
                "add_timeout", TimeoutOptions, None, {"timeout": timeout, **fields}
            )
        return self._add_typed("add_timeout", TimeoutOptions, timeout, fields)

    def add_retry(self, options: RetryOptions | None = None, /, **fields: Any) -> Self:
        """``add_retry(max_attempts=3, delay=0.5)`` or ``add_retry(RetryOptions(...))``."""
        return self._add_typed("add_retry", RetryOptions, options, fields)

    def add_circuit_breaker(
        self, options: CircuitBreakerOptions | None = None, /, **fields: Any
    ) -> Self:
        return self._add_typed("add_circuit_breaker", CircuitBreakerOptions, options, fields)

    def add_rate_limiter(self, options: RateLimiterOptions | None = None, /, **fields: Any) -> Self:
        return self._add_typed("add_rate_limiter", RateLimiterOptions, options, fields)

    def add_bulkhead(self, options: BulkheadOptions | None = None, /, **fields: Any) -> Self:
        return self._add_typed("add_bulkhead", BulkheadOptions, options, fields)

    def add_admission(self, options: AdmissionOptions | None = None, /, **fields: Any) -> Self:
        """Adaptive concurrency limit with priority shedding: ``add_admission()`` (Vegas,
        queue of 100), ``add_admission(algorithm=VegasLimit(), queue_timeout=2)``."""
        return self._add_typed("add_admission", AdmissionOptions, options, fields)

    def add_throttle(self, options: ThrottleOptions | None = None, /, **fields: Any) -> Self:
        """Client-side adaptive throttling (Google SRE): ``add_throttle(k=2, window=120)``."""
        return self._add_typed("add_throttle", ThrottleOptions, options, fields)

    def add_hedging(self, options: HedgingOptions | None = None, /, **fields: Any) -> Self:
        """Hedged attempts for work safe to repeat: ``add_hedging(delay=1.5)`` (latency),
        ``add_hedging(delay=0, max_hedged_attempts=2)`` (parallel), ``delay=None`` (fallback)."""
        return self._add_typed("add_hedging", HedgingOptions, options, fields)

    def add_fallback(self, options: FallbackOptions | None = None, /, **fields: Any) -> Self:
        return self._add_typed("add_fallback", FallbackOptions, options, fields)

    def add_cache(self, options: CacheOptions | None = None, /, **fields: Any) -> Self:
        return self._add_typed("add_cache", CacheOptions, options, fields)

    def add_chaos(self, options: ChaosOptions | None = None, /, **fields: Any) -> Self:
        return self._add_typed("add_chaos", ChaosOptions, options, fields)

    def build_keyed(
        self,
        *,
        max_keys: int = 100_000,
        fuse: bool = True,
        on_evicted: Callable[[str, Pipeline], object] | None = None,
    ) -> KeyedPipelines:
        """One pipeline per key (a user, a tenant), each built on first use: see
        :class:`KeyedPipelines`. ``pipelines.get(user_id).execute(fn)``."""
        if self._used:
            raise RuntimeError("PipelineBuilder.build() may be called only once")
        self._used = True
        return KeyedPipelines(
            self._build, tuple(self._items), max_keys=max_keys, fuse=fuse, on_evicted=on_evicted
        )

    def build(self, *, fuse: bool = True) -> Pipeline:
        """The pipeline. ``fuse=False`` keeps the general onion (one coroutine per strategy)
        even where the strategies could run fused: same behaviour, for comparison."""
        if self._used:
            raise RuntimeError("PipelineBuilder.build() may be called only once")
        self._used = True
        strategies = tuple(
            item if isinstance(item, Strategy) else item.create_strategy(self._build)
            for item in self._items
        )
        for position, strategy in enumerate(strategies):
            strategy.on_pipeline_built(position, strategies)
        return Pipeline(self._build.name, self._build.instance, strategies, self._build, fuse=fuse)


# Strategies that keep no state of their own between calls: one instance serves every key.
_STATELESS = (TimeoutStrategy, RetryStrategy)


class KeyedPipelines:
    """One pipeline per key (a user, a tenant), built from one builder on the key's first use.

    Each key's pipeline has its own state wherever a strategy keeps some (a breaker, a
    ``rate=``/``burst=`` token bucket, a bulkhead), as if built with
    ``PipelineBuilder(name, instance=key)`` from the same options; what the options hold (a
    shared ``limiter=``, a retry budget, hooks) is shared, as it would be. Timeouts and
    retries keep no state between calls, so one instance of each serves every key, as do the
    builder's randomness and the fused runner: a key costs its state and little else. A
    breaker or a builder-made bucket for a key is a copy of the first one built (settings
    shared, not validated again); one with a store, a ``control`` or a ``state_provider`` is
    built from its options. (Telemetry of timeouts and retries reports the builder's
    ``instance``; breakers and limiters report the key.)

    Keys live in an LRU of at most ``max_keys``: the least recently used key is dropped
    when a new one would exceed it, whatever its state (an open breaker, calls in flight):
    calls already running keep their pipeline and finish on it, and the key starts afresh
    (a closed breaker, a full bucket) when it returns. :meth:`get` reports such an eviction
    to ``on_evicted(key, pipeline)`` when given, so an application can see an open breaker
    go; size ``max_keys`` above the keys active within a break duration.
    """

    __slots__ = (
        "_ages", "_build", "_fuse", "_items", "_max_keys", "_on_evicted", "_pipelines",
        "_prototype", "_runner", "_shared", "_tick",
    )  # fmt: skip

    def __init__(
        self,
        build: BuildContext,
        items: tuple[StrategyOptions | Strategy, ...],
        *,
        max_keys: int = 100_000,
        fuse: bool = True,
        on_evicted: Callable[[str, Pipeline], object] | None = None,
    ) -> None:
        self._max_keys = integer("KeyedPipelines", "max_keys", max_keys, minimum=1)
        if on_evicted is not None and not callable(on_evicted):
            raise InvalidOptionsError("KeyedPipelines", "on_evicted", "must be callable")
        self._on_evicted = on_evicted
        self._build = build
        self._items = items
        self._fuse = fuse
        self._pipelines: dict[str, Pipeline] = {}
        self._ages: list[tuple[int, str]] = []  # a heap: see _evict
        self._tick = 0  # calls of get() so far: a pipeline's _used is the last one
        # A prototype, built once: its stateless strategies (wired together, e.g. a total
        # timeout fused with its retry) are the ones every key's pipeline uses, its stateful
        # ones are what a key's copies are made from, its fused runner runs every key.
        prototype = tuple(
            item if isinstance(item, Strategy) else item.create_strategy(build) for item in items
        )
        for position, strategy in enumerate(prototype):
            strategy.on_pipeline_built(position, prototype)
        self._prototype = prototype
        self._shared = tuple(
            strategy if type(strategy) in _STATELESS or isinstance(item, Strategy) else None
            for item, strategy in zip(items, prototype, strict=True)
        )
        self._runner = fused_runner(build.name, build.clock, prototype) if fuse else None

    @property
    def name(self) -> str:
        return self._build.name

    @property
    def max_keys(self) -> int:
        return self._max_keys

    def get(self, key: str) -> Pipeline:
        """The pipeline of ``key`` (built on first use, then reused)."""
        # A hit only stamps the pipeline (an object the call touches anyway) with the use
        # count: an OrderedDict's move_to_end touched the key's list node and both
        # neighbours, three cold objects per call with many keys. The order is settled
        # when a key must go (``_evict``).
        tick = self._tick = self._tick + 1
        pipeline = self._pipelines.get(key)
        if pipeline is not None:
            pipeline._used = tick
            return pipeline
        pipeline = self._create(key)
        pipeline._used = tick
        self._pipelines[key] = pipeline
        heappush(self._ages, (tick, key))
        if len(self._pipelines) > self._max_keys:
            self._evict()
        return pipeline

    def _evict(self) -> None:
        """Drop the least recently used key. ``_ages`` holds one ``(stamp, key)`` per key,
        the stamp no later than the key's last use; a top whose stamp is its last use is
        the least recently used (every other key's last use is at or after its own stamp,
        which is at or after the top's); a stale top is re-stamped and sinks."""
        ages = self._ages
        pipelines = self._pipelines
        while True:
            stamp, key = ages[0]
            used = pipelines[key]._used
            if used == stamp:
                break
            heapreplace(ages, (used, key))
        heappop(ages)
        old = pipelines.pop(key)
        if self._on_evicted is not None:
            with contextlib.suppress(Exception):  # an observer must not fail the call
                self._on_evicted(key, old)

    def peek(self, key: str) -> Pipeline | None:
        """The pipeline of ``key`` if it exists, without building it or refreshing its age."""
        return self._pipelines.get(key)

    def _create(self, key: str) -> Pipeline:
        base = self._build
        listener = base.listener
        strategies: list[Strategy] = []
        made: list[bool] = []  # built from options for this key: wired below
        for item, shared, proto in zip(self._items, self._shared, self._prototype, strict=True):
            if shared is not None:
                strategies.append(shared)
                made.append(False)
                continue
            telemetry = None if listener is None else _key_build(base, key).telemetry(proto.kind)
            copy: Strategy | None = None
            if isinstance(proto, (RateLimiterStrategy, CircuitBreakerStrategy)):
                copy = proto.keyed_copy(telemetry)
            if copy is None:
                assert not isinstance(item, Strategy)  # a given strategy is shared
                copy = item.create_strategy(_key_build(base, key))
                made.append(True)
            else:
                made.append(False)
            strategies.append(copy)
        built = tuple(strategies)
        for position, strategy in enumerate(built):
            if made[position]:  # the shared ones were wired once, copies need none
                strategy.on_pipeline_built(position, built)
        runner = self._runner
        if runner is not None:
            return Pipeline(base.name, key, built, base, runner=runner)
        return Pipeline(base.name, key, built, _key_build(base, key), fuse=False)

    def __len__(self) -> int:
        return len(self._pipelines)

    def __contains__(self, key: object) -> bool:
        return key in self._pipelines

    def __repr__(self) -> str:
        kinds = ", ".join(type(item).__name__.removesuffix("Options") for item in self._items)
        return f"KeyedPipelines({self.name!r}, [{kinds}], keys={len(self._pipelines)})"


def _key_build(base: BuildContext, key: str) -> BuildContext:
    return replace(base, instance=key)
