"""``EndpointProber``: background health checks that take endpoints in and out of rotation.

Same contract as the health monitor's checks: a fixed-rate loop on the injected clock, each
check bounded by ``timeout`` (at most the interval), so a failing endpoint leaves rotation
within one ``interval`` and comes back on the first passing check. Probing is separate
from the breaker on purpose: a probe says "reachable", traffic says "works"; an endpoint
must satisfy both to be chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.routing._endpoint import Endpoint, PoolMember
from netra_resilience.routing._pool import EndpointPool

EndpointCheck = Callable[[Endpoint], Awaitable[bool | None] | bool | None]
"""``check(endpoint)``: ``False`` or an exception means down; anything else means up."""


class EndpointProber:
    """Probe every pool member each ``interval``; mark failures down, recoveries up."""

    def __init__(
        self,
        pool: EndpointPool,
        check: EndpointCheck,
        *,
        interval: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        if interval <= 0:
            raise InvalidOptionsError("EndpointProber", "interval", f"must be > 0, got {interval}")
        timeout = interval if timeout is None else timeout
        if not 0 < timeout <= interval:
            raise InvalidOptionsError(
                "EndpointProber", "timeout", f"must be in (0, interval], got {timeout}"
            )
        self._pool = pool
        self._check = check
        self.interval = interval
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    async def probe_once(self) -> dict[str, bool]:
        """Check every member now (concurrently); returns ``{key: up}``."""
        members = self._pool.members
        results = await asyncio.gather(*(self._probe(m) for m in members))
        for member, up in zip(members, results, strict=True):
            self._pool.set_down(member.key, not up)
        self.rounds += 1
        return {m.key: up for m, up in zip(members, results, strict=True)}

    async def _probe(self, member: PoolMember) -> bool:
        try:
            async with self._pool.clock.timeout(self.timeout):
                answer = self._check(member.endpoint)
                if inspect.isawaitable(answer):
                    answer = await answer
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # stop(): the loop itself is being cancelled
            return False  # the check raised it by itself (a closing socket): down
        except Exception:  # includes the probe's own TimeoutError
            return False
        return answer is not False

    async def _loop(self) -> None:
        clock = self._pool.clock
        while True:
            started = clock.monotonic()
            await self.probe_once()
            await clock.sleep(max(self.interval - (clock.monotonic() - started), 0.0))

    def start(self) -> None:
        """Start the background loop (probes once immediately)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=f"netra-probe:{self._pool.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
