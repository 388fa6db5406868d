"""How a :class:`SessionStore` routes calls between primary and fallback."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from netra_resilience.context import ResilienceContext, current_context
from netra_resilience.degradation import DegradationReason
from netra_resilience.sessions._record import SessionRecord, SessionStoreUnavailableError
from netra_resilience.sessions._sync import StoreSync

T = TypeVar("T")


def _newest(a: SessionRecord | None, b: SessionRecord | None) -> SessionRecord | None:
    if a is None or (b is not None and b.version > a.version):
        return b
    return a


class StoreRouting(StoreSync):
    """The routing half of :class:`SessionStore`: each call to the primary, or the fallback."""

    dependency: str

    def _mark(self, context: ResilienceContext | None, reason: DegradationReason) -> None:
        ctx = context if context is not None else current_context()
        if ctx is not None:
            ctx.degradation.mark(self.dependency, reason)

    async def _load(self, key: str, context: ResilienceContext | None) -> SessionRecord | None:
        if self.primary_gate.allows():
            self._maybe_sync()
            if self._pending and self._fallback is not None:
                return await self._load_both(key, context)
            try:
                return await self.primary_gate.call(functools.partial(self._primary.load, key))
            except Exception as exc:
                return await self._from_fallback(
                    functools.partial(self._load_fallback, key), context, "get", exc
                )
        record = await self._from_fallback(
            functools.partial(self._load_fallback, key), context, "get", None
        )
        if record is None and self.primary_gate.probing and await self.primary_gate.probe_now():
            # A miss while the primary may be back: its write-back may already have moved
            # the session there. Worth waiting for the (bounded) probe, once.
            return await self._load(key, context)
        return record

    async def _load_fallback(self, key: str) -> SessionRecord | None:
        assert self._fallback is not None
        return await self._fallback.load(key)

    async def _load_both(self, key: str, context: ResilienceContext | None) -> SessionRecord | None:
        assert self._fallback is not None
        if not self.fallback_gate.allows():
            try:
                return await self.primary_gate.call(functools.partial(self._primary.load, key))
            except Exception as exc:
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation="get") from exc
        primary, fallback = await asyncio.gather(
            self.primary_gate.call(functools.partial(self._primary.load, key)),
            self.fallback_gate.call(functools.partial(self._fallback.load, key)),
            return_exceptions=True,
        )
        if isinstance(primary, BaseException):
            if isinstance(fallback, BaseException):
                self._mark(context, DegradationReason.UNAVAILABLE)
                raise SessionStoreUnavailableError(operation="get") from fallback
            self._mark(context, DegradationReason.FALLBACK_DATABASE)
            return fallback
        # The fallback failing here costs nothing visible: the primary answered.
        return _newest(primary, None if isinstance(fallback, BaseException) else fallback)

    async def _save(self, record: SessionRecord, context: ResilienceContext | None) -> None:
        error: Exception | None = None
        if self.primary_gate.allows():
            self._maybe_sync()
            try:
                await self.primary_gate.call(
                    functools.partial(self._primary.save, record, self._wall())
                )
                return
            except Exception as exc:
                error = exc
        await self._from_fallback(
            functools.partial(self._save_fallback, record), context, "put", error
        )

    async def _save_fallback(self, record: SessionRecord) -> None:
        assert self._fallback is not None
        self._pending = True
        self._fallback_writes += 1
        await self._fallback.save(record, self._wall())

    async def _from_fallback(
        self,
        fn: Callable[[], Awaitable[T]],
        context: ResilienceContext | None,
        operation: str,
        error: Exception | None,
    ) -> T:
        if self._fallback is None or not self.fallback_gate.allows():
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from error
        try:
            result = await self.fallback_gate.call(fn)
        except Exception as exc:
            self._mark(context, DegradationReason.UNAVAILABLE)
            raise SessionStoreUnavailableError(operation=operation) from exc
        self._mark(context, DegradationReason.FALLBACK_DATABASE)
        return result
