"""Response cache: a backend error is a miss, never a failed call; entries may be served
stale when the call fails. Keys carry the caller's scope unless sharing is opted in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from netra_resilience.clock import SYSTEM_CLOCK, Clock, SystemClock
from netra_resilience.context import ResilienceContext
from netra_resilience.degradation import DegradationReason
from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.outcome import Outcome
from netra_resilience.predicates import ANY_EXCEPTION
from netra_resilience.strategy import BuildContext, Callback, Strategy
from netra_resilience.telemetry import Severity, Telemetry
from netra_resilience.validation import (
    Seconds,
    callable_or_none,
    duration,
    integer,
    optional_duration,
    set_field,
    to_seconds,
)

if TYPE_CHECKING:
    from netra_resilience.strategy import BuildContext


def _canonical(obj: Any) -> Any:
    """JSON fallback for types ``json`` does not know; deterministic across processes."""
    if isinstance(obj, set | frozenset):
        # Set iteration order depends on per-process hash randomisation: sort canonically.
        return sorted(_dumps(item) for item in obj)
    if isinstance(obj, bytes | bytearray):
        return {"__bytes__": bytes(obj).hex()}
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):  # pydantic models (openai request/message types)
        return model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return repr(obj)


# Built once: json.dumps with non-default options makes a new encoder per call (~1 us, most
# of what a short key costs). An encoder holds only its options, no state between calls.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical
)


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


quote_json: Callable[[str], str] = json.encoder.encode_basestring
"""A string as canonical JSON writes it (quoted, escaped, non-ASCII kept)."""


def canonical_text(*parts: Any) -> str:
    """``parts`` as the canonical JSON :func:`stable_key` hashes (for key functions whose
    result :class:`CacheStrategy` hashes anyway, so a call's key is hashed once)."""
    return _dumps(parts)


LONG_TEXT = 256
"""Strings at least this long enter a key as the SHA-256 of their text (see
:class:`KeyEncoder`); the same threshold in every process keeps keys shared."""


class KeyEncoder:
    """Canonical key text whose cost follows what changed, not the prompt's size.

    The text is :func:`canonical_text`'s JSON except that a string of :data:`LONG_TEXT` or
    more characters is written as ``#`` and the SHA-256 of its text, a token JSON never
    contains outside a string literal, so different requests still give different texts.
    Those digests are remembered by the string's *value* (a Python string cannot change, and
    caches its hash): a system prompt or conversation history sent again, even rebuilt
    from a database, is hashed once, not on every call. A dict of strings only (a chat
    message) is remembered the same way, by its items' values: a conversation's history sent
    again costs a lookup per message, not a walk. Other containers are walked on every call.
    Nothing is remembered by identity, so a dict a caller mutates and sends again gets the
    key of what it holds now.

    The memo keeps up to ``max_chars`` characters of text alive, least recently used out
    first; ``max_chars=0`` remembers nothing (for a key function shared process-wide).
    """

    __slots__ = ("_chars", "_max_chars", "_memo")

    def __init__(self, *, max_chars: int = 1_000_000) -> None:
        self._max_chars = integer("KeyEncoder", "max_chars", max_chars, minimum=0)
        # Long strings -> their digest; flat dicts' items -> their text (one LRU budget).
        self._memo: OrderedDict[str | tuple[tuple[str, str], ...], str] = OrderedDict()
        self._chars = 0

    @property
    def remembered_chars(self) -> int:
        """Characters of text remembered now (at most ``max_chars``): long strings whose
        digest is kept, flat dicts' items and their text."""
        return self._chars

    def text(self, *parts: Any) -> str:
        """The canonical text of ``parts`` (a JSON array, long strings as digests)."""
        out: list[str] = []
        self.write(parts, out)
        return "".join(out)

    def write(self, value: Any, out: list[str]) -> None:
        """Append the canonical text of ``value`` to ``out`` (for key functions that write
        their own top level, e.g. skipping parameters without copying the dict)."""
        kind = type(value)
        if kind is str:
            out.append(self._digest(value) if len(value) >= LONG_TEXT else quote_json(value))
        elif kind is dict:
            self._dict(value, out)
        elif kind is list or kind is tuple:
            write = self.write
            write_dict = self._dict
            out.append("[")
            first = True
            for item in value:
                if first:
                    first = False
                else:
                    out.append(",")
                item_kind = type(item)
                if item_kind is str and len(item) < LONG_TEXT:
                    out.append(quote_json(item))
                elif item_kind is dict:  # a list of messages: no dispatch per message
                    write_dict(item, out)
                else:
                    write(item, out)
            out.append("]")
        elif kind is int:
            out.append(int.__repr__(value))
        elif value is None:
            out.append("null")
        elif kind is bool:
            out.append("true" if value else "false")
        elif kind is float and value - value == 0.0:  # finite: json writes its repr
            out.append(float.__repr__(value))
        elif isinstance(value, str | int | float | dict | list | tuple):
            out.append(_ENCODER.encode(value))  # subclasses (enums...): as json sees them
        else:
            # What json's ``default`` gives (a model's dump, a sorted set...), walked so its
            # long strings are remembered too.
            self.write(_canonical(value), out)

    def _dict(self, value: dict[Any, Any], out: list[str]) -> None:
        if self._max_chars:
            for item in value.values():
                if type(item) is not str:
                    break
            else:
                self._flat_dict(value, out)
                return
        self._walk_dict(value, out)

    def _flat_dict(self, value: dict[Any, Any], out: list[str]) -> None:
        """A dict of strings (a chat message): its text remembered by its items, so a
        message sent again (a conversation's history) is looked up, not walked. Items equal
        to remembered string items are strings with the same text (an ``int`` never equals
        a ``str``), whatever object holds them."""
        items = tuple(value.items())
        memo = self._memo
        found = memo.get(items)
        if found is not None:
            memo.move_to_end(items)
            out.append(found)
            return
        mark = len(out)
        self._walk_dict(value, out)
        if all(type(name) is str for name in value):  # json coerces other keys: not kept
            text = "".join(out[mark:])
            del out[mark:]
            out.append(text)
            self._remember(items, text)

    def _walk_dict(self, value: dict[Any, Any], out: list[str]) -> None:
        try:
            names = sorted(value)
        except TypeError:  # keys of mixed types: json's own verdict
            out.append(_ENCODER.encode(value))
            return
        write = self.write
        mark = len(out)
        separator = "{"
        for name in names:
            if type(name) is not str:
                del out[mark:]
                out.append(_ENCODER.encode(value))  # json's coercion of non-string keys
                return
            out.append(separator)
            separator = ","
            out.append(quote_json(name))
            out.append(":")
            item = value[name]
            if type(item) is str and len(item) < LONG_TEXT:
                out.append(quote_json(item))
            else:
                write(item, out)
        out.append("{}" if separator == "{" else "}")

    def _digest(self, text: str) -> str:
        memo = self._memo
        found = memo.get(text)
        if found is not None:
            memo.move_to_end(text)
            return found
        digest = "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        self._remember(text, digest)
        return digest

    def _remember(self, key: str | tuple[tuple[str, str], ...], text: str) -> None:
        size = _memo_size(key, text)
        if not 0 < size <= self._max_chars:
            return
        memo = self._memo
        memo[key] = text
        self._chars += size
        while self._chars > self._max_chars:
            oldest, kept = memo.popitem(last=False)
            self._chars -= _memo_size(oldest, kept)


def _memo_size(key: str | tuple[tuple[str, str], ...], text: str) -> int:
    """Characters a memo entry keeps alive: a long string (its digest is small), or a flat
    dict's items and their text."""
    if isinstance(key, str):
        return len(key)
    return len(text) + sum(len(name) + len(item) for name, item in key)


def stable_key(*parts: Any) -> str:
    """SHA-256 hex digest of ``parts`` as canonical JSON (sorted keys, fixed separators).

    Dict ordering never changes the key, and the key is the same in every process, so it can
    address a shared (Redis) cache. Unknown types fall back to ``repr``; give them a stable
    ``repr`` (or convert them yourself) if they are part of a key. Hashing also keeps prompts
    and other caller data out of backend key names.
    """
    return hashlib.sha256(_dumps(parts).encode("utf-8")).hexdigest()


def call_arguments(state: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The user's ``(args, kwargs)`` from a pipeline ``state`` of ``(fn, args, kwargs)``."""
    if not (isinstance(state, tuple) and len(state) == 3):
        return (), {}
    _, args, kwargs = state
    return args, kwargs


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached value and its lifetimes, as wall-clock epoch seconds.

    Wall-clock (``clock.now().timestamp()``) rather than monotonic time, so an entry written by
    one process is meaningful to another reading the same shared backend.

    * fresh while ``now < expires_at`` (may be served instead of calling);
    * usable stale while ``now < stale_until`` (served only when the call fails).
    """

    value: Any
    stored_at: float
    expires_at: float
    stale_until: float

    def is_fresh(self, now: float) -> bool:
        return now < self.expires_at

    def is_usable(self, now: float) -> bool:
        return now < self.stale_until


_ENTRY_FIELDS = tuple(
    CacheEntry.__dict__[name].__set__
    for name in ("value", "stored_at", "expires_at", "stale_until")
)


def new_entry(value: Any, stored_at: float, expires_at: float, stale_until: float) -> CacheEntry:
    """``CacheEntry(...)`` for the success path: the frozen dataclass's ``__init__`` goes
    through ``object.__setattr__`` per field; its slots are set directly here (same object,
    still frozen to callers)."""
    entry: CacheEntry = object.__new__(CacheEntry)
    set_value, set_stored, set_expires, set_stale = _ENTRY_FIELDS
    set_value(entry, value)
    set_stored(entry, stored_at)
    set_expires(entry, expires_at)
    set_stale(entry, stale_until)
    return entry


@runtime_checkable
class CacheBackend(Protocol):
    """Where entries live. Implementations may raise anything: the strategy treats it as a miss.

    ``set``'s ``ttl`` is how long to keep the entry at all (until ``entry.stale_until``);
    a backend may drop entries earlier (eviction) but should not serve them later. Values are
    stored as given; serialising them is the backend's business. A backend in this process
    that never waits may say so with ``in_process = True``: it then gets no timeout per
    operation (``CacheOptions.backend_timeout``).
    """

    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...


class InMemoryTTLCache:
    """A per-process backend: LRU-bounded to ``max_entries``, expiring on the injected clock.

    Expiry uses the clock's monotonic time (immune to wall-clock jumps). Objects are kept as
    they are, not copied: do not mutate a value after caching it.
    """

    __slots__ = ("_clock", "_data", "max_entries")

    def __init__(self, *, max_entries: int = 10_000, clock: Clock | None = None) -> None:
        self.max_entries = integer("InMemoryTTLCache", "max_entries", max_entries, minimum=1)
        self._clock = clock or SYSTEM_CLOCK
        self._data: OrderedDict[str, tuple[float, CacheEntry]] = OrderedDict()

    async def get(self, key: str) -> CacheEntry | None:
        return self.get_now(key)

    def get_now(self, key: str) -> CacheEntry | None:
        """``get`` without a coroutine (this cache never waits)."""
        item = self._data.get(key)
        if item is None:
            return None
        deadline, entry = item
        if self._clock.monotonic() >= deadline:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        self.set_now(key, entry, ttl)

    def set_now(self, key: str, entry: CacheEntry, ttl: float) -> None:
        """``set`` without a coroutine (this cache never waits)."""
        data = self._data
        if ttl <= 0:
            data.pop(key, None)
            return
        data[key] = (self._clock.monotonic() + ttl, entry)
        data.move_to_end(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


_OWNER = "CacheOptions"

CacheKey = Callable[[ResilienceContext, tuple[Any, ...], dict[str, Any]], str | None]
"""``key(context, args, kwargs) -> str | None``; ``None`` bypasses the cache for that call."""


@dataclass(frozen=True, slots=True)
class CacheEventArgs:
    """Passed to ``on_hit`` / ``on_stale``: the context, the (hashed) key and the entry."""

    context: ResilienceContext
    key: str
    entry: CacheEntry


CacheHook = Callable[[CacheEventArgs], Awaitable[None] | None]


def _always(result: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """A response cache that never fails a request and can answer stale when the call fails.

    * ``key`` must cover everything that changes the output (model, messages, tools,
      temperature, ...). The stored key is a hash of ``namespace`` (default: pipeline name),
      that key and, unless ``include_scope=False``, the caller's scope (tenant/user): sharing
      answers across users is an explicit opt-in. A call with no caller scope (no user nor
      tenant on its context) bypasses a per-caller cache: it is neither read nor written.
    * ``ttl``: fresh lifetime (``0`` = never serve fresh, keep only for stale-on-error);
      ``stale_ttl``: extra lifetime during which a failure matched by ``stale_on`` (by default
      any exception, rejections such as an open breaker included) is answered from the entry,
      marking the dependency ``stale_cache``.
    * ``should_cache(result)`` keeps refusals and error texts out of the cache.
    * ``backend_timeout``: a slower backend operation counts as a miss (or a skipped store),
      never as a stall (not applied to :class:`InMemoryTTLCache`, which never waits).
      Backend errors of any kind are misses too.
    """

    backend: CacheBackend
    key: CacheKey
    ttl: Seconds
    stale_ttl: Seconds = 0.0
    serve_fresh: bool = True
    should_cache: Callable[[Any], bool] = _always
    stale_on: Callable[[Outcome[Any]], bool] = ANY_EXCEPTION
    include_scope: bool = True
    namespace: str | None = None
    backend_timeout: Seconds | None = 0.25
    on_hit: CacheHook | None = None
    on_stale: CacheHook | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.backend, CacheBackend):
            raise InvalidOptionsError(
                _OWNER, "backend", "must implement async get(), set() and delete()"
            )
        for name in ("key", "should_cache", "stale_on"):
            if not callable(getattr(self, name)):
                raise InvalidOptionsError(_OWNER, name, "must be callable")
        ttl = duration(_OWNER, "ttl", self.ttl, allow_zero=True)
        stale_ttl = duration(_OWNER, "stale_ttl", self.stale_ttl, allow_zero=True)
        if ttl == 0 and stale_ttl == 0:
            raise InvalidOptionsError(_OWNER, "stale_ttl", "must be > 0 when ttl is 0")
        set_field(self, "ttl", ttl)
        set_field(self, "stale_ttl", stale_ttl)
        set_field(
            self,
            "backend_timeout",
            optional_duration(_OWNER, "backend_timeout", self.backend_timeout),
        )
        for flag in ("serve_fresh", "include_scope"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidOptionsError(_OWNER, flag, "must be a bool")
        if self.namespace is not None and (
            not isinstance(self.namespace, str) or not self.namespace
        ):
            raise InvalidOptionsError(_OWNER, "namespace", "must be a non-empty string or None")
        callable_or_none(_OWNER, "on_hit", self.on_hit)
        callable_or_none(_OWNER, "on_stale", self.on_stale)

    def create_strategy(self, build: BuildContext) -> CacheStrategy:

        return CacheStrategy(self, build)


class SafeBackend:
    """Wraps a :class:`CacheBackend` with the backend timeout and error reporting.

    Any ``Exception`` (connection refused, a deserialisation error, the timeout's own
    ``TimeoutError``) is reported as a ``cache_error`` event and swallowed; a caller's
    ``CancelledError`` still propagates.
    """

    __slots__ = ("_backend", "_clock", "_memory", "_telemetry", "_timeout")

    def __init__(
        self, backend: CacheBackend, clock: Clock, timeout: float | None, telemetry: Telemetry
    ) -> None:
        self._backend = backend
        self._clock = clock
        # An in-process cache never waits: a timeout per operation could only add its cost.
        self._memory = backend if type(backend) is InMemoryTTLCache else None
        in_process = self._memory is not None or getattr(backend, "in_process", False) is True
        self._timeout = None if in_process else timeout
        self._telemetry = telemetry

    async def get(self, key: str, operation_key: str) -> CacheEntry | None:
        if self._memory is not None:
            found = self._memory.get_now(key)  # no coroutine: it cannot fail nor wait
            return found if isinstance(found, CacheEntry) else None
        try:
            if self._timeout is None:
                entry = await self._backend.get(key)
            else:
                async with self._clock.timeout(self._timeout):
                    entry = await self._backend.get(key)
        except Exception as exc:
            self.error("get", exc, operation_key)
            return None
        # A backend returning something else (a raw value, a bad deserialisation) is a miss.
        return entry if isinstance(entry, CacheEntry) else None

    async def set(self, key: str, entry: CacheEntry, ttl: float, operation_key: str) -> None:
        if self._memory is not None:
            self._memory.set_now(key, entry, ttl)
            return
        try:
            if self._timeout is None:
                await self._backend.set(key, entry, ttl)
            else:
                async with self._clock.timeout(self._timeout):
                    await self._backend.set(key, entry, ttl)
        except Exception as exc:
            self.error("set", exc, operation_key)

    def error(self, stage: str, exc: BaseException, operation_key: str, **args: Any) -> None:
        if self._telemetry.enabled:
            self._telemetry.emit(
                "cache_error",
                Severity.WARNING,
                operation_key,
                reason=stage,
                error_type=type(exc).__name__,
                **args,
            )


async def run_hook(
    hook: CacheHook | None, context: ResilienceContext, key: str, entry: CacheEntry
) -> None:
    if hook is None:
        return
    try:
        value = hook(CacheEventArgs(context, key, entry))
        if inspect.isawaitable(value):
            await value
    except Exception:  # an observer must never change the answer
        return


_STALE = DegradationReason.STALE_CACHE


class CacheStrategy(Strategy):
    """Read-through cache with stale-if-error. The cache never causes a request to fail.

    A fresh hit is not degradation (no mark, event ``cache_hit``); a stale answer served on
    failure marks the dependency ``stale_cache``. Place it outside the breaker so an open
    circuit (``BrokenCircuitError``) is answered from the cache.
    """

    __slots__ = (
        "_backend",
        "_clock",
        "_key",
        "_name",
        "_namespace",
        "_on_hit",
        "_on_stale",
        "_scoped",
        "_serve_fresh",
        "_should_cache",
        "_stale_on",
        "_stale_on_results",
        "_stale_ttl",
        "_telemetry",
        "_ttl",
        "_wall",
    )

    kind: ClassVar[str] = "cache"

    def __init__(self, options: CacheOptions, build: BuildContext) -> None:
        self._key = options.key
        self._ttl = to_seconds(options.ttl)
        self._stale_ttl = to_seconds(options.stale_ttl)
        self._serve_fresh = options.serve_fresh
        self._should_cache = options.should_cache
        self._stale_on = options.stale_on
        # A predicate that never handles a success (``exceptions_only``) is not asked about one.
        self._stale_on_results = getattr(options.stale_on, "exceptions_only", False) is not True
        self._scoped = options.include_scope
        self._namespace = options.namespace or build.name
        self._on_hit = options.on_hit
        self._on_stale = options.on_stale
        self._name = build.name
        self._clock = build.clock
        clock = build.clock
        # Entries carry wall-clock epoch seconds; the system clock's are time.time() without
        # a datetime in between.
        self._wall: Callable[[], float] = (
            time.time if type(clock) is SystemClock else lambda: clock.now().timestamp()
        )
        self._telemetry = build.telemetry(self.kind)
        timeout = options.backend_timeout
        self._backend = SafeBackend(
            options.backend,
            build.clock,
            None if timeout is None else to_seconds(timeout),
            self._telemetry,
        )

    @property
    def backend(self) -> CacheBackend:
        """The backend this cache reads and writes (as configured, without the error guard)."""
        return self._backend._backend

    def key_for(
        self, context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        """The backend key for this call (namespaced, hashed, scoped), or ``None`` to bypass."""
        scope = context.scope if self._scoped else None
        if scope == "":
            # Anonymous caller of a per-caller cache: no scope to keep one caller's answers
            # from another's, so no caching at all (share with include_scope=False).
            return None
        raw = self._key(context, args, kwargs)
        if raw is None:
            return None
        # One SHA-256 of the text (the LLM key is canonical JSON already): JSON-encoding it
        # again would only escape it. The scope's length keeps the two parts apart.
        text = f"{raw}" if scope is None else f"{len(scope)}:{scope}|{raw}"
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self._namespace}:{'s' if scope is None else 'c'}{digest}"

    async def lookup_stale(
        self, context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CacheEntry | None:
        """The entry for this call if still usable (fresh or stale), else ``None``.

        For a fallback action elsewhere. It does not mark degradation: whoever serves the
        entry marks ``stale_cache`` (or passes ``reason="stale_cache"`` to the fallback).
        """
        key = self._safe_key(context, args, kwargs)
        if key is None:
            return None
        entry = await self._backend.get(key, context.operation_key)
        return entry if entry is not None and entry.is_usable(self._now()) else None

    async def execute(
        self, callback: Callback, context: ResilienceContext, state: Any
    ) -> Outcome[Any]:
        args, kwargs = call_arguments(state)
        key = self._safe_key(context, args, kwargs)
        if key is None:
            return await callback(context, state)
        entry: CacheEntry | None = None
        if self._serve_fresh:
            entry = await self._backend.get(key, context.operation_key)
            if entry is not None and entry.is_fresh(self._now()):
                self._emit("cache_hit", context)
                await run_hook(self._on_hit, context, key, entry)
                return Outcome(entry.value)
            self._emit("cache_miss", context)
        outcome = await callback(context, state)
        if outcome.exception is None:
            if self._stale_on_results and self._stale_on(outcome):
                return await self._serve_stale(outcome, context, key, entry)
        elif self._stale_on(outcome):
            return await self._serve_stale(outcome, context, key, entry)
        if outcome.exception is None and self._cacheable(outcome.result, context):
            now = self._now()
            keep = self._ttl + self._stale_ttl
            stored = new_entry(outcome.result, now, now + self._ttl, now + keep)
            await self._backend.set(key, stored, keep, context.operation_key)
        return outcome

    async def _serve_stale(
        self,
        outcome: Outcome[Any],
        context: ResilienceContext,
        key: str,
        entry: CacheEntry | None,
    ) -> Outcome[Any]:
        now = self._now()
        if entry is None or not entry.is_usable(now):
            # Look (again): another request may have stored an answer while this one ran.
            entry = await self._backend.get(key, context.operation_key)
            if entry is None or not entry.is_usable(now):
                return outcome
        context.degradation.mark(self._name, _STALE)
        if self._telemetry.enabled:
            exc = outcome.exception
            self._telemetry.emit(
                "cache_stale",
                Severity.WARNING,
                context.operation_key,
                reason=_STALE.value,
                error_type=type(exc).__name__ if exc is not None else None,
                age=now - entry.stored_at,
            )
        await run_hook(self._on_stale, context, key, entry)
        return Outcome(entry.value)

    def _now(self) -> float:
        return self._wall()

    def _safe_key(
        self, context: ResilienceContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        try:
            return self.key_for(context, args, kwargs)
        except Exception as exc:  # a broken key function bypasses the cache, loudly
            self._backend.error("key", exc, context.operation_key)
            return None

    def _cacheable(self, result: Any, context: ResilienceContext) -> bool:
        try:
            return bool(self._should_cache(result))
        except Exception as exc:
            self._backend.error("should_cache", exc, context.operation_key)
            return False

    def _emit(self, name: str, context: ResilienceContext) -> None:
        if self._telemetry.enabled:
            self._telemetry.emit(name, Severity.DEBUG, context.operation_key)


__all__ = [
    "CacheBackend",
    "CacheEntry",
    "CacheEventArgs",
    "CacheHook",
    "CacheKey",
    "CacheOptions",
    "CacheStrategy",
    "InMemoryTTLCache",
    "KeyEncoder",
    "canonical_text",
    "stable_key",
]
