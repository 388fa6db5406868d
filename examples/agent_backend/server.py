"""How the demo command serves the app: uvicorn with bounded reads (no slowloris exposure).

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) and the size of a request
head (h11: 16 KiB) and of a WebSocket frame (``ws_max_size``), but not the *time* a client may
take to send a request: a connection that sends nothing, or trickles its head or its body, stays
open for ever. :func:`guarded_h11` closes such a connection:

* the request head must be complete ``header_timeout`` seconds after the connection opened, or
  after the previous response ended (a keep-alive connection is idle in between);
* while the body is being read, ``body_timeout`` seconds without a byte close the connection
  (the route then sees the client gone: ``ClientDisconnect``, answered 499 by ``install``).

A connection upgraded to a WebSocket is no longer watched (uvicorn pings it:
``ws_ping_interval``/``ws_ping_timeout``), nor is one whose request is being answered (the
app's own timeouts bound that). Checks run every quarter of the smaller timeout, so a stalled
connection is closed within 1.25 x its timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from examples.agent_backend.config import Settings


def guarded_h11(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the read deadlines above (pass it as ``http=``)."""
    tick = max(0.01, min(header_timeout, body_timeout) / 4)

    class GuardedH11Protocol(H11Protocol):
        _guard: asyncio.TimerHandle | None = None
        _idle_since: float | None = None
        _last_data = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            loop = asyncio.get_running_loop()
            self._idle_since = self._last_data = loop.time()
            self._guard = loop.call_later(tick, self._check)

        def data_received(self, data: bytes) -> None:
            self._last_data = asyncio.get_running_loop().time()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._guard is not None:
                self._guard.cancel()
            super().connection_lost(exc)

        def _check(self) -> None:
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket
            now = asyncio.get_running_loop().time()
            state = self.conn.their_state
            expired = False
            if state is h11.IDLE:  # waiting for (the rest of) a request head
                if self._idle_since is None:
                    self._idle_since = now
                expired = now - self._idle_since >= header_timeout
            else:
                self._idle_since = None
                expired = state is h11.SEND_BODY and now - self._last_data >= body_timeout
            if expired:
                transport.close()
                return
            self._guard = asyncio.get_running_loop().call_later(tick, self._check)

    return GuardedH11Protocol


def server_config(app: Any, settings: Settings, *, host: str = "127.0.0.1") -> uvicorn.Config:
    """The uvicorn settings of ``python -m examples.agent_backend`` (see ``Settings``)."""
    return uvicorn.Config(
        app,
        host=host,
        port=settings.port,
        log_level="warning",
        http=guarded_h11(settings.header_timeout, settings.body_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
        ws_max_size=settings.ws_max_size,
    )
