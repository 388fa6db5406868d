"""Token and cost budgets: reserve the worst case before an LLM call, settle to its usage after.

A check-then-record budget lets every concurrent request pass the same "remaining" figure
(LiteLLM #34732, #40095); a per-process counter multiplies the limit by the replica count
(#27736, #40291). Here every limit that applies to a call is checked *and* charged in one
atomic store step (one Lua script on Redis), with the call's worst case: input tokens bounded
from above plus the output cap. After the call the hold is replaced by the ``usage`` the
provider reported; a failed call gives its tokens and cost back; a cancelled one keeps its
input (the provider may have billed it). So the sum of what is held never passes a limit.

    budget = Budget(
        [BudgetLimit.cost_per_day(20.0, per=("tenant",)),
         BudgetLimit.tokens_per_minute(200_000, per=("tenant", "model"))],
        models=("gpt-4o", "gpt-4o-mini"),     # each must be priced (DEFAULT_PRICES or yours)
    )
    async with await budget.reserve(request) as held:   # BudgetExhaustedError when it won't fit
        reply = await call(request)
        await held.settle(usage_of(reply))

Amounts are integers in the store: tokens, requests, and cost in nano-USD (prices therefore
resolve to $0.001 per million tokens), so settled sums are exact.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from netra_resilience.clock import SYSTEM_CLOCK, Clock
from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.exceptions import ExecutionRejectedError, InvalidOptionsError, NetraError
from netra_resilience.llm._request import LlmRequest
from netra_resilience.llm._stream import (
    UNSEEN,
    ChatStreamTracker,
    FieldPair,
    StreamTracker,
    field,
)
from netra_resilience.validation import integer, number, set_field

BUDGET_EXHAUSTED = "budget_exhausted"
"""Degradation reason marked on the dependency whose call a budget refused."""

SCOPES = ("tenant", "user", "run", "api_key", "model")
"""The dimensions a limit can be kept per (``per=("tenant", "model")`` composes two)."""

METRICS = ("tokens", "requests", "cost")
WINDOWS = {"minute": 60, "hour": 3_600, "day": 86_400, "month": 0}  # month: calendar, UTC

NANO = 1_000_000_000  # store units per USD
MAX_UNITS = 2**53  # Lua numbers are doubles: integers stay exact below this


def _window_end(window: str, now: float) -> tuple[int, float]:
    """The fixed UTC window holding ``now``: its index and the timestamp it ends at."""
    seconds = WINDOWS[window]
    if seconds:
        index = math.floor(now / seconds)
        return index, float((index + 1) * seconds)
    moment = datetime.fromtimestamp(now, UTC)
    index = moment.year * 12 + moment.month - 1
    year, month = divmod(index + 1, 12)
    return index, datetime(year, month + 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetLimit:
    """At most ``limit`` of ``metric`` per ``window``, kept separately for each value of the
    ``per`` dimensions (none: one budget for everything).

    ``metric``: ``"tokens"`` (input + output), ``"requests"``, ``"cost"`` (USD, priced by the
    budget's :class:`PriceTable`). ``window``: ``"minute"``, ``"hour"``, ``"day"`` or
    ``"month"`` (fixed UTC windows; a month is the calendar month).
    """

    metric: str
    limit: float
    window: str
    per: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = "BudgetLimit"
        if self.metric not in METRICS:
            raise InvalidOptionsError(
                owner, "metric", f"must be one of {METRICS}, got {self.metric!r}"
            )
        if self.window not in WINDOWS:
            raise InvalidOptionsError(
                owner, "window", f"must be one of {tuple(WINDOWS)}, got {self.window!r}"
            )
        number(owner, "limit", self.limit)
        if self.units > MAX_UNITS:
            raise InvalidOptionsError(
                owner, "limit", f"is too large to count exactly: {self.limit!r}"
            )
        per = tuple(self.per)
        for dim in per:
            if dim not in SCOPES:
                raise InvalidOptionsError(
                    owner, "per", f"dimensions must be among {SCOPES}, got {dim!r}"
                )
        if len(set(per)) != len(per):
            raise InvalidOptionsError(owner, "per", f"names a dimension twice: {per!r}")
        set_field(self, "per", per)

    @property
    def units(self) -> int:
        """The limit in store units (tokens, requests, nano-USD)."""
        scale = NANO if self.metric == "cost" else 1
        return math.floor(self.limit * scale)

    @property
    def label(self) -> str:
        """``cost/day:tenant+model``: names the limit in errors and store keys (no values)."""
        base = f"{self.metric}/{self.window}"
        return f"{base}:{'+'.join(self.per)}" if self.per else base

    @classmethod
    def tokens_per_minute(cls, tokens: int, *, per: Sequence[str] = ()) -> BudgetLimit:
        return cls(metric="tokens", limit=tokens, window="minute", per=tuple(per))

    @classmethod
    def requests_per_minute(cls, requests: int, *, per: Sequence[str] = ()) -> BudgetLimit:
        return cls(metric="requests", limit=requests, window="minute", per=tuple(per))

    @classmethod
    def cost_per_day(cls, usd: float, *, per: Sequence[str] = ()) -> BudgetLimit:
        return cls(metric="cost", limit=usd, window="day", per=tuple(per))

    @classmethod
    def cost_per_month(cls, usd: float, *, per: Sequence[str] = ()) -> BudgetLimit:
        return cls(metric="cost", limit=usd, window="month", per=tuple(per))


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used (or may use, for a reservation's worst case)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def usage_of(result: Any) -> Usage | None:
    """The provider's reported usage on a chat completion, a Responses API response, a stream
    chunk carrying ``usage``, or a ``response.completed`` event; ``None`` when absent/malformed."""
    usage = field(result, "usage")
    if usage is None:
        usage = field(field(result, "response"), "usage")  # response.completed event
    if usage is None:
        return None
    prompt = _count(field(usage, "prompt_tokens"))
    if prompt is not None:
        completion = _count(field(usage, "completion_tokens"))
        return None if completion is None else Usage(prompt, completion)
    given = _count(field(usage, "input_tokens"))
    taken = _count(field(usage, "output_tokens"))
    return None if given is None or taken is None else Usage(given, taken)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens; ``max_output_tokens`` caps the worst case of a call that sets no
    ``max_tokens`` (else the budget's ``default_max_output``)."""

    input_per_million: float
    output_per_million: float
    max_output_tokens: int | None = None

    def __post_init__(self) -> None:
        number("ModelPrice", "input_per_million", self.input_per_million, exclusive=False)
        number("ModelPrice", "output_per_million", self.output_per_million, exclusive=False)
        if self.max_output_tokens is not None:
            integer("ModelPrice", "max_output_tokens", self.max_output_tokens)

    def cost_units(self, usage: Usage) -> int:
        """Cost of ``usage`` in nano-USD (rates rounded to 1 nano-USD per token)."""
        per_input = round(self.input_per_million * 1000)
        per_output = round(self.output_per_million * 1000)
        return usage.input_tokens * per_input + usage.output_tokens * per_output

    def cost(self, usage: Usage) -> float:
        """Cost of ``usage`` in USD."""
        return self.cost_units(usage) / NANO


class PriceTable:
    """Model name -> :class:`ModelPrice`. A dated snapshot (``gpt-4o-mini-2024-07-18``) takes
    the price of its longest listed prefix ending at a ``-``."""

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        for name, price in prices.items():
            if not isinstance(name, str) or not name or not isinstance(price, ModelPrice):
                raise InvalidOptionsError(
                    "PriceTable", "prices", f"must map model names to ModelPrice, got {name!r}"
                )
        self._prices = dict(prices)

    def get(self, model: str) -> ModelPrice | None:
        price = self._prices.get(model)
        if price is not None:
            return price
        cut = model.rfind("-")
        while cut > 0:
            price = self._prices.get(model[:cut])
            if price is not None:
                return price
            cut = model.rfind("-", 0, cut)
        return None

    def with_prices(self, prices: Mapping[str, ModelPrice]) -> PriceTable:
        """A copy with ``prices`` added or replaced."""
        return PriceTable({**self._prices, **prices})

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.get(model) is not None

    def __iter__(self) -> Any:
        return iter(self._prices)


DEFAULT_PRICES = PriceTable(
    {
        # OpenAI list prices (USD per 1M tokens, standard tier) when this table was written.
        # Prices change: inject your own (PriceTable({...}) or DEFAULT_PRICES.with_prices).
        "gpt-4o": ModelPrice(2.50, 10.00, 16_384),
        "gpt-4o-mini": ModelPrice(0.15, 0.60, 16_384),
        "gpt-4.1": ModelPrice(2.00, 8.00, 32_768),
        "gpt-4.1-mini": ModelPrice(0.40, 1.60, 32_768),
        "gpt-4.1-nano": ModelPrice(0.10, 0.40, 32_768),
        "o4-mini": ModelPrice(1.10, 4.40, 100_000),
    }
)
"""A small documented default: six OpenAI models. Anything else must be priced by you."""


class BudgetExhaustedError(ExecutionRejectedError):
    """A budget refused the call before it was sent: its worst case does not fit ``limit``.

    ``retry_after`` is the time until the window resets (``None`` when the call's worst case
    exceeds the whole limit and can never fit). ``near_limit`` is true when the call was
    refused only by a step-down ceiling below the full limit (a cheaper model may still fit).
    Not transient: a retry cannot succeed before the reset, so none is made. ``http_status``
    is what an HTTP layer should answer (429 with ``Retry-After``).
    """

    default_message = "budget exhausted"
    http_status = 429
    limit: BudgetLimit | None = None
    near_limit: bool = False


class UnpricedModelError(NetraError):
    """A cost budget was asked to hold a call to a model it has no price for (refused, never
    guessed); list every model you call in ``Budget(models=...)`` to find this at start-up."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no price for model {model!r}: add it to the budget's price table")
        self.model = model
        self.transient = False


@dataclass(frozen=True, slots=True)
class Counter:
    """One limit's share of one call in the store: hold ``amount`` under ``key`` while the
    key's total stays <= ``limit`` (store units); the key lives until ``expires_at``."""

    key: str
    amount: int
    limit: int
    expires_at: float


class BudgetStore(Protocol):
    """Where counters live. Both steps must be atomic over all the counters given."""

    async def reserve(self, counters: Sequence[Counter], now: float) -> int:
        """Add every amount if every counter stays within its limit and return a negative
        number (-1: held in the shared counters; below: held in a local share while those
        are unreachable); else return the index of the first counter that would not fit
        (then nothing is added)."""

    async def adjust(
        self, deltas: Sequence[tuple[Counter, int]], now: float, *, local: bool = False
    ) -> None:
        """Add each delta (settle: actual - held; release: -held) to a live counter;
        ``local``: the hold was granted from a local share."""

    async def used(self, key: str, now: float) -> int:
        """The counter's current total (0 when absent)."""


class InMemoryBudgetStore:
    """The default store: counters in this process (one replica). Expired windows are dropped
    as they are met, and at most ``max_keys`` counters are kept (oldest window first)."""

    __slots__ = ("_counters", "_max_keys")

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._max_keys = integer("InMemoryBudgetStore", "max_keys", max_keys)
        self._counters: dict[str, list[float]] = {}  # key -> [total, expires_at]

    def _live(self, key: str, now: float) -> list[float] | None:
        entry = self._counters.get(key)
        if entry is not None and entry[1] <= now:
            del self._counters[key]
            return None
        return entry

    async def reserve(self, counters: Sequence[Counter], now: float) -> int:
        return self.reserve_now(counters, now)

    def reserve_now(self, counters: Sequence[Counter], now: float) -> int:
        """:meth:`reserve` without an await (the check and the add cannot interleave)."""
        for index, counter in enumerate(counters):
            entry = self._live(counter.key, now)
            total = entry[0] if entry is not None else 0
            if total + counter.amount > counter.limit:
                return index
        for counter in counters:
            entry = self._live(counter.key, now)
            if entry is None:
                self._trim(now)
                self._counters[counter.key] = [counter.amount, counter.expires_at]
            else:
                entry[0] += counter.amount
        return -1

    def _trim(self, now: float) -> None:
        if len(self._counters) < self._max_keys:
            return
        for key in [k for k, (_, end) in self._counters.items() if end <= now]:
            del self._counters[key]
        while len(self._counters) >= self._max_keys:
            oldest = min(self._counters, key=lambda k: self._counters[k][1])
            del self._counters[oldest]

    async def adjust(
        self, deltas: Sequence[tuple[Counter, int]], now: float, *, local: bool = False
    ) -> None:
        self.adjust_now(deltas, now)

    def adjust_now(self, deltas: Sequence[tuple[Counter, int]], now: float) -> None:
        for counter, delta in deltas:
            entry = self._live(counter.key, now)
            if entry is not None:  # a window that has ended needs no correction
                entry[0] = max(0, entry[0] + delta)

    async def used(self, key: str, now: float) -> int:
        entry = self._live(key, now)
        return int(entry[0]) if entry is not None else 0


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """Who a call is charged to. ``None`` values share one counter (all anonymous callers)."""

    tenant: str | None = None
    user: str | None = None
    run: str | None = None
    api_key: str | None = None
    model: str | None = None


API_KEY_PROPERTY = "netra.api_key_id"
"""Context property read as the ``api_key`` dimension (put a key *id* there, never the key)."""


def context_scope(context: ResilienceContext | None, request: LlmRequest) -> BudgetScope:
    """The default scope: tenant, user and run ids from the context, the API key id from its
    :data:`API_KEY_PROPERTY` property, the model from the request."""
    if context is None:
        return BudgetScope(model=request.model)
    key_id = context.properties.get(API_KEY_PROPERTY)
    return BudgetScope(
        tenant=context.tenant_id,
        user=context.user_id,
        run=context.run_id,
        api_key=key_id if isinstance(key_id, str) else None,
        model=request.model,
    )


ScopeOf = Callable[[ResilienceContext | None, LlmRequest], BudgetScope]

_TEXT_PARAMS = ("messages", "input", "instructions", "prompt", "tools", "functions")
_OUTPUT_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
PER_MESSAGE_TOKENS = 8  # role and separators a chat template adds around each message


def input_token_bound(request: LlmRequest) -> int:
    """An upper bound of the input tokens: the UTF-8 bytes of the prompt fields (a byte-level
    BPE token is at least one byte) plus a few tokens per message. Pessimistic for English
    (about 4x); inject an exact counter (``estimate_input=``) to admit more near a limit."""
    total = 0
    for name in _TEXT_PARAMS:
        value = request.params.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            total += len(value.encode())
            continue
        total += len(json.dumps(value, ensure_ascii=False, default=str).encode())
        if isinstance(value, list):
            total += PER_MESSAGE_TOKENS * len(value)
    return total + PER_MESSAGE_TOKENS


class Budget:
    """A set of :class:`BudgetLimit` checked together for every call (see the module doc).

    * ``store``: :class:`InMemoryBudgetStore` by default (one process); a
      ``RedisBudgetStore`` shares the counters across replicas.
    * ``prices``: for cost limits. A cost limit needs ``models`` (each priced here) or an
      explicit ``unknown_model_price``; a call to an unpriced model is refused
      (:class:`UnpricedModelError`), never guessed.
    * ``scope``: who a call is charged to (:func:`context_scope`); ``estimate_input``: the
      input side of the worst case (:func:`input_token_bound`); ``default_max_output``: the
      output cap of a call that sets none and whose model lists none.
    """

    __slots__ = (
        "_clock",
        "_default_output",
        "_estimate",
        "_limits",
        "_memory",
        "_prefix",
        "_prices",
        "_scope",
        "_store",
        "_unknown",
        "name",
    )

    def __init__(
        self,
        limits: Sequence[BudgetLimit],
        *,
        store: BudgetStore | None = None,
        prices: PriceTable = DEFAULT_PRICES,
        models: Iterable[str] = (),
        unknown_model_price: ModelPrice | None = None,
        scope: ScopeOf = context_scope,
        estimate_input: Callable[[LlmRequest], int] = input_token_bound,
        default_max_output: int = 16_384,
        clock: Clock | None = None,
        name: str = "llm",
        prefix: str = "{netra:budget}:",
    ) -> None:
        owner = "Budget"
        self._limits = tuple(limits)
        if not self._limits:
            raise InvalidOptionsError(owner, "limits", "must hold at least one BudgetLimit")
        labels = set()
        for limit in self._limits:
            if not isinstance(limit, BudgetLimit):
                raise InvalidOptionsError(owner, "limits", f"expected BudgetLimit, got {limit!r}")
            if limit.label in labels:
                raise InvalidOptionsError(owner, "limits", f"has {limit.label!r} twice")
            labels.add(limit.label)
        if not isinstance(prices, PriceTable):
            raise InvalidOptionsError(owner, "prices", "must be a PriceTable")
        if unknown_model_price is not None and not isinstance(unknown_model_price, ModelPrice):
            raise InvalidOptionsError(owner, "unknown_model_price", "must be a ModelPrice")
        self._prices = prices
        self._unknown = unknown_model_price
        listed = tuple(models)
        if any(limit.metric == "cost" for limit in self._limits):
            if not listed and unknown_model_price is None:
                raise InvalidOptionsError(
                    owner,
                    "models",
                    "must list the models you call (each priced in prices) when a cost limit "
                    "is set, or give unknown_model_price",
                )
            for model in listed:
                self.require_price(owner, "models", model)
        for name_, fn in (("scope", scope), ("estimate_input", estimate_input)):
            if not callable(fn):
                raise InvalidOptionsError(owner, name_, "must be callable")
        self._scope = scope
        self._estimate = estimate_input
        self._default_output = integer(owner, "default_max_output", default_max_output)
        self._store: BudgetStore = store if store is not None else InMemoryBudgetStore()
        # The default store is synchronous inside: its steps are called without an await.
        self._memory = self._store if type(self._store) is InMemoryBudgetStore else None
        self._clock = clock or SYSTEM_CLOCK
        self._prefix = prefix
        self.name = name

    @property
    def limits(self) -> tuple[BudgetLimit, ...]:
        return self._limits

    @property
    def store(self) -> BudgetStore:
        return self._store

    def price_of(self, model: str | None) -> ModelPrice:
        """The price a call to ``model`` is held at; :class:`UnpricedModelError` when none."""
        price = self._prices.get(model) if model else None
        if price is None:
            price = self._unknown
        if price is None:
            raise UnpricedModelError(model or "")
        return price

    def require_price(self, owner: str, field_name: str, model: str) -> None:
        """Construction-time check for a call site that knows its model (an alternate)."""
        if any(limit.metric == "cost" for limit in self._limits):
            try:
                self.price_of(model)
            except UnpricedModelError:
                raise InvalidOptionsError(
                    owner, field_name, f"has no price for model {model!r} in the budget's prices"
                ) from None

    def worst_case(self, request: LlmRequest) -> Usage:
        """Input bound plus the output cap (``max_tokens``-like parameter, else the model's,
        else ``default_max_output``), times ``n`` choices."""
        cap: int | None = None
        for name in _OUTPUT_CAPS:
            value = _count(request.params.get(name))
            if value is not None:
                cap = value if cap is None else max(cap, value)
        price = self._prices.get(request.model) if request.model else None
        model_cap = price.max_output_tokens if price is not None else None
        if cap is None:
            cap = model_cap if model_cap is not None else self._default_output
        choices = _count(request.params.get("n")) or 1
        return Usage(max(0, int(self._estimate(request))), cap * choices)

    def _keys(self, limit: BudgetLimit, scope: BudgetScope, index: int) -> str:
        values = "\x1f".join(f"{dim}={getattr(scope, dim) or ''}" for dim in limit.per)
        digest = hashlib.sha256(values.encode()).hexdigest()[:24]  # ids never appear in keys
        return f"{self._prefix}{limit.label}:{index}:{digest}"

    def counters_for(
        self, scope: BudgetScope, worst: Usage, cost: int, now: float
    ) -> list[Counter]:
        counters = []
        for limit in self._limits:
            index, end = _window_end(limit.window, now)
            amount = (
                worst.total
                if limit.metric == "tokens"
                else 1
                if limit.metric == "requests"
                else cost
            )
            counters.append(Counter(self._keys(limit, scope, index), amount, limit.units, end))
        return counters

    async def reserve(
        self,
        request: LlmRequest,
        context: ResilienceContext | None = None,
        *,
        ceiling: float = 1.0,
        dependency: str | None = None,
    ) -> Reservation:
        """Hold ``request``'s worst case against every limit, or raise
        :class:`BudgetExhaustedError` (marking ``dependency=budget_exhausted``).

        ``ceiling`` < 1 admits the call only while each counter stays within that fraction of
        its limit (the step-down point: the refusal says ``near_limit``, and a cheaper
        alternate reserving at the full limit may still fit)."""
        ctx = context if context is not None else current_context()
        scope = self._scope(ctx, request)
        worst = self.worst_case(request)
        needs_price = any(limit.metric == "cost" for limit in self._limits)
        price = self.price_of(request.model) if needs_price else None
        cost = price.cost_units(worst) if price is not None else 0
        now = self._clock.now().timestamp()
        counters = self.counters_for(scope, worst, cost, now)
        if ceiling < 1.0:
            held = [
                Counter(c.key, c.amount, math.floor(c.limit * ceiling), c.expires_at)
                for c in counters
            ]
        else:
            held = counters
        memory = self._memory
        failed = memory.reserve_now(held, now) if memory else await self._store.reserve(held, now)
        if failed >= 0:
            raise self._refusal(
                context=ctx,
                counter=counters[failed],
                limit=self._limits[failed],
                now=now,
                ceiling=ceiling,
                dependency=dependency,
            )
        return Reservation(self, counters, worst, price, local=failed != -1)

    def _refusal(
        self,
        *,
        context: ResilienceContext | None,
        counter: Counter,
        limit: BudgetLimit,
        now: float,
        ceiling: float,
        dependency: str | None,
    ) -> BudgetExhaustedError:
        name = dependency or self.name
        if context is not None:
            context.degradation.mark(name, BUDGET_EXHAUSTED)
        never = counter.amount > counter.limit
        error = BudgetExhaustedError(
            f"budget {limit.label} exhausted"
            + (": this call's worst case exceeds the whole limit" if never else ""),
            retry_after=None if never else max(0.0, counter.expires_at - now),
            dependency=name,
        )
        error.limit = limit
        error.near_limit = ceiling < 1.0 and not never
        return error

    async def used(self, limit: BudgetLimit, scope: BudgetScope | None = None) -> float:
        """What ``limit`` holds now for ``scope`` (settled usage plus open reservations), in
        its unit: tokens, requests or USD."""
        now = self._clock.now().timestamp()
        index, _ = _window_end(limit.window, now)
        units = await self._store.used(self._keys(limit, scope or BudgetScope(), index), now)
        return units / NANO if limit.metric == "cost" else float(units)

    async def adjust(self, deltas: Sequence[tuple[Counter, int]], *, local: bool) -> None:
        if not deltas:
            return
        now = self._clock.now().timestamp()
        if self._memory is not None:
            self._memory.adjust_now(deltas, now)  # no await: nothing a cancel can interrupt
            return
        # Shielded: a settle or release interrupted by a cancel would leak the hold.
        await asyncio.shield(self._store.adjust(deltas, now, local=local))


class Reservation:
    """One call's hold. End it once: :meth:`settle` (to the reported usage), :meth:`release`
    (the call failed: tokens and cost back, the request still counts) or
    :meth:`settle_input` (cancelled mid-call: the input is kept). As an async context
    manager, leaving without ending it keeps the worst case on success, releases on an
    exception and settles the input on a cancel."""

    __slots__ = ("_budget", "_counters", "_price", "ended", "local", "worst")

    def __init__(
        self,
        budget: Budget,
        counters: list[Counter],
        worst: Usage,
        price: ModelPrice | None,
        *,
        local: bool = False,
    ) -> None:
        self._budget = budget
        self._counters = counters
        self._price = price
        self.worst = worst
        self.local = local  # held in a local share (the shared store was unreachable)
        self.ended: str | None = None  # "settled", "released", "input"

    @property
    def worst_cost(self) -> float:
        """The held cost in USD (0 without a cost limit)."""
        return self._price.cost(self.worst) if self._price is not None else 0.0

    def _deltas(self, actual: Usage, *, keep_request: bool = True) -> list[tuple[Counter, int]]:
        deltas = []
        for limit, counter in zip(self._budget.limits, self._counters, strict=True):
            if limit.metric == "tokens":
                delta = actual.total - counter.amount
            elif limit.metric == "cost":
                spent = self._price.cost_units(actual) if self._price is not None else 0
                delta = spent - counter.amount
            else:
                delta = 0 if keep_request else -counter.amount
            if delta:
                deltas.append((counter, delta))
        return deltas

    async def settle(self, usage: Usage | None) -> None:
        """Replace the hold by ``usage``; ``None`` (no usage reported) keeps the worst case."""
        if self.ended is not None:
            return
        self.ended = "settled"
        if usage is not None:
            await self._budget.adjust(self._deltas(usage), local=self.local)

    async def release(self) -> None:
        """The call failed before the provider billed it: give its tokens and cost back."""
        if self.ended is not None:
            return
        self.ended = "released"
        await self._budget.adjust(self._deltas(Usage()), local=self.local)

    async def settle_input(self) -> None:
        """Cancelled or timed out after sending: keep the input bound, drop the output part."""
        if self.ended is not None:
            return
        self.ended = "input"
        await self._budget.adjust(self._deltas(Usage(self.worst.input_tokens, 0)), local=self.local)

    async def fail(self, error: BaseException) -> None:
        """End after ``error``: a timeout or a cancel keeps the input (the provider had the
        request), any other failure releases."""
        if isinstance(error, Exception) and not isinstance(error, TimeoutError):
            await self.release()
        else:
            await self.settle_input()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.settle(None)
        else:
            await self.fail(exc)


class MeteredTracker:
    """A :class:`StreamTracker` that also keeps the last ``usage`` a chunk reported (chat's
    ``include_usage`` chunk, ``response.completed``), for settling a stream at its end.

    Over a :class:`ChatStreamTracker` its ``observe`` *is* the inner one's (which hands this
    meter the few chunks that may report usage): no second pass over every chunk.
    """

    __slots__ = ("_fields", "inner", "observe", "usage")

    def __init__(self, inner: StreamTracker) -> None:
        self.inner = inner
        self.usage: Usage | None = None
        self._fields = UNSEEN
        self.observe: Callable[[Any], None]
        if isinstance(inner, ChatStreamTracker) and inner.on_usage is None:
            inner.on_usage = self.record
            self.observe = inner.observe
        else:
            self.observe = self._observe_both

    def record(self, chunk: Any) -> None:
        """Keep ``chunk``'s usage if it reports one."""
        found = usage_of(chunk)
        if found is not None:
            self.usage = found

    def _observe_both(self, chunk: Any) -> None:
        fields = self._fields
        if fields.cls is not type(chunk):
            fields = self._fields = FieldPair(type(chunk), "usage", "response")
        # Most chunks carry neither: only those that do are parsed (see usage_of).
        try:
            usage, response = fields.read(chunk)
        except AttributeError:  # a model built without a declared field: parse it in full
            usage = response = chunk
        if usage is not None or response is not None:
            self.record(chunk)
        self.inner.observe(chunk)

    def is_preamble(self, chunk: Any) -> bool:
        return self.inner.is_preamble(chunk)

    @property
    def complete(self) -> bool:
        return self.inner.complete


def with_stream_usage(request: LlmRequest) -> LlmRequest:
    """A chat stream asks for its usage chunk (``stream_options.include_usage``) unless the
    caller set ``stream_options``: without it a stream can only settle to its worst case."""
    if request.kind == "chat" and request.stream and "stream_options" not in request.params:
        return request.with_params(stream_options={"include_usage": True})
    return request
