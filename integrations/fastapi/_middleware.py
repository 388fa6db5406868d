"""Pure ASGI middleware: per-request degraded-mode flags and 503s for critical rejections.

Plain ASGI (no Starlette import, never ``BaseHTTPMiddleware``): that would run the app in
another task, so context variables set downstream would not propagate and streaming and
background tasks would suffer.

For each HTTP or WebSocket connection the middleware

* creates a :class:`~netra_resilience.Degradation` and a
  :class:`~netra_resilience.ResilienceContext` around it, binds that context to the context
  variable (so every pipeline called while serving the request marks the same record) and
  puts both in ``scope["state"]`` (``request.state.degradation``,
  ``request.state.resilience_context``);
* adds ``Netra-Degraded: llm=stale_cache, analytics=skipped`` to the response start (or the
  WebSocket accept) when something degraded; no header otherwise;
* turns an :class:`~netra_resilience.ExecutionRejectedError` that escapes the app into a
  ``503`` with ``Retry-After`` and an RFC 9457 ``application/problem+json`` body naming the
  dependency, when the dependency is *critical* and the response has not started.

What reaches the header: marks made before the response starts, i.e. in the route (async or
sync, the threadpool copies the context and the record is shared by reference), in
dependencies and middleware inside this one, and in a streaming route *before* it returns
its ``StreamingResponse``. Marks made while a stream is being sent, or in a background task
(which runs after the response), cannot reach headers already sent; they still land in the
same ``Degradation`` (send them in a final SSE event, or log them).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from netra_resilience.context import ResilienceContext, bind_context, unbind_context
from netra_resilience.degradation import Degradation, safe_token
from netra_resilience.exceptions import AdmissionRejectedError, ExecutionRejectedError
from netra_resilience.health import Criticality, ServiceRegistry, retry_after_header

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Identify = Callable[[Scope], str | None]
"""``identify(scope) -> user id | None``: who is calling (see :class:`ResilienceMiddleware`)."""
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_HEADER = "Netra-Degraded"
PROBLEM_MEDIA_TYPE = "application/problem+json"
STATE_DEGRADATION = "degradation"
STATE_CONTEXT = "resilience_context"
_SCOPES = frozenset({"http", "websocket"})
_START = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})


class RejectionPolicy:
    """Decides which rejections become a 503 and renders the problem response.

    With a registry, only dependencies registered as ``critical`` qualify (a non-critical
    rejection that escaped is a missing fallback: it stays an error), plus a spent budget and
    a call shed by admission control, which are answers to the caller. Without one, every
    rejection counts as critical.
    """

    __slots__ = ("default_retry_after", "problem_type", "registry")

    def __init__(
        self,
        registry: ServiceRegistry | None = None,
        *,
        default_retry_after: float = 5.0,
        problem_type: str = "about:blank",
    ) -> None:
        self.registry = registry
        self.default_retry_after = default_retry_after
        self.problem_type = problem_type

    def is_critical(self, exc: ExecutionRejectedError) -> bool:
        if self.registry is None or getattr(exc, "http_status", 503) == 429:
            return True  # a spent budget is the caller's answer, whatever the dependency
        if isinstance(exc, AdmissionRejectedError):
            return True  # load shed on purpose: "too busy, retry after", whatever the dependency
        return self.registry.criticality_of(exc.dependency) is Criticality.CRITICAL

    def retry_after(self, exc: ExecutionRejectedError) -> float:
        """The rejection's own hint, else the dependency's health-check interval (an isolated
        breaker is closed by the next passing check), else ``default_retry_after``."""
        if exc.retry_after:
            return exc.retry_after
        if self.registry is not None:
            interval = self.registry.probe_interval_of(exc.dependency)
            if interval is not None:
                return interval
        return self.default_retry_after

    def render(self, exc: ExecutionRejectedError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body of the 503 (429 for a rejection that says so, e.g. an
        exhausted budget): the dependency's name, nothing internal."""
        dependency = safe_token(exc.dependency) if exc.dependency else None
        status = 429 if getattr(exc, "http_status", 503) == 429 else 503
        if status == 429:
            title = "Too Many Requests"
            detail = f"A usage budget for {dependency or 'this service'!r} is exhausted."
        else:
            title = "Service Unavailable"
            detail = (
                f"The dependency {dependency!r} is temporarily unavailable."
                if dependency
                else "A required dependency is temporarily unavailable."
            )
        body: dict[str, Any] = {
            "type": self.problem_type,
            "title": title,
            "status": status,
            "detail": detail,
        }
        if dependency:
            body["dependency"] = dependency
        headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"cache-control", b"no-store")]
        retry_after = retry_after_header(self.retry_after(exc))
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        return status, headers, json.dumps(body, separators=(",", ":")).encode()


class _StartWithHeader:
    """The ``send`` a request's app gets: adds the degradation header to the response start.

    One slotted object and one bound method per request rather than a closure (a function
    and four cells): every container object alive for the whole request, times the requests
    in flight, counts towards the cyclic GC's generation-0 threshold.
    """

    __slots__ = ("_degradation", "_header", "_send", "started")

    def __init__(self, send: Send, degradation: Degradation, header: bytes) -> None:
        self._send = send
        self._degradation = degradation
        self._header = header
        self.started = False

    # Returns ``send``'s own awaitable, not a coroutine of its own: no extra coroutine
    # object and await level per message (the body is most of them).
    def send(self, message: Message) -> Awaitable[None]:
        if self.started or message["type"] not in _START:
            return self._send(message)  # the body: passed through untouched
        self.started = True
        degradation = self._degradation
        if degradation:
            headers = list(message.get("headers") or ())
            headers.append((self._header, degradation.header_value().encode("latin-1")))
            message = {**message, "headers": headers}
        return self._send(message)


class ResilienceMiddleware:
    """``app.add_middleware(ResilienceMiddleware, registry=registry)``; see the module doc.

    Add it last so it is the outermost user middleware (outside auth and CORS): then the
    header reaches every response. Register the FastAPI exception handler too
    (``integrations.fastapi.install`` does) so a 503 produced inside the app also passes
    through CORS and the other middlewares.

    ``identify(scope)`` names the caller (a user id, or ``None`` for anonymous) from what your
    authentication put on the connection scope: caches and limiters inside the request keep
    that caller's answers and quota apart. Without it every request is anonymous, and
    per-caller caches neither serve nor store anything for it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: ServiceRegistry | None = None,
        header_name: str = DEFAULT_HEADER,
        policy: RejectionPolicy | None = None,
        operation_key: str = "",
        identify: Identify | None = None,
    ) -> None:
        self.app = app
        self.identify = identify
        self.header = safe_token(header_name).lower().encode("latin-1")
        self.policy = policy or RejectionPolicy(registry)
        self.operation_key = operation_key

    def _caller(self, scope: Scope) -> str | None:
        identify = self.identify
        if identify is None:
            return None
        try:
            caller = identify(scope)
        except Exception:  # an identity hook that fails leaves the caller anonymous
            return None
        return caller if isinstance(caller, str) and caller else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hot path of every request: each Python call, closure cell and allocation here
        # is paid per request (bench.asgi_middleware --instructions counts them).
        kind = scope["type"]
        if kind not in _SCOPES:
            await self.app(scope, receive, send)
            return
        degradation = Degradation()
        context = ResilienceContext(
            self.operation_key,
            degradation=degradation,
            user_id=None if self.identify is None else self._caller(scope),
        )
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[STATE_DEGRADATION] = degradation
        state[STATE_CONTEXT] = context
        start = _StartWithHeader(send, degradation, self.header)
        send_with_header = start.send

        token = bind_context(context)
        try:
            await self.app(scope, receive, send_with_header)
        except ExecutionRejectedError as exc:
            if start.started or kind != "http" or not self.policy.is_critical(exc):
                raise
            status, headers, body = self.policy.render(exc)
            await send_with_header(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            unbind_context(token)
