"""Write-back after an outage: move what the fallback holds into the primary, newest wins."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from netra_resilience.sessions._gate import BackendGate
from netra_resilience.sessions._record import FallbackSessionBackend, SessionBackend


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one write-back pass did.

    ``moved``: records written to the primary. ``superseded``: records the primary already
    held in a newer version (a write after recovery), dropped. ``expired``: records past their
    TTL, dropped. ``complete``: the pass reached the end (false when a backend failed midway;
    the rest stays in the fallback for the next pass).
    """

    moved: int = 0
    superseded: int = 0
    expired: int = 0
    complete: bool = True


async def write_back(
    primary: SessionBackend,
    fallback: FallbackSessionBackend,
    *,
    primary_gate: BackendGate,
    fallback_gate: BackendGate,
    now: float,
    batch: int,
    grace: float,
) -> ReconcileReport:
    """One pass over the fallback's pending records in key order, then a purge.

    Each record goes to the primary with a compare-and-set on its version, then is marked
    synced only if the fallback still holds that same version. So a write that lands in the
    fallback during the pass is never lost, and an older outage write never overwrites a newer
    session (or resurrects a deleted one: deletions are tombstones with versions too). Synced
    records older than ``grace`` seconds are deleted at the end.
    """
    moved = superseded = expired = 0
    after = ""
    try:
        while True:
            rows = await fallback_gate.call(
                functools.partial(fallback.pending, after=after, limit=batch)
            )
            for record in rows:
                if record.expired(now):
                    expired += 1
                elif await primary_gate.call(functools.partial(primary.save, record, now)):
                    moved += 1
                else:
                    superseded += 1
                await fallback_gate.call(
                    functools.partial(fallback.mark_synced, record.key, record.version, now)
                )
            if len(rows) < batch:
                break
            after = rows[-1].key
        await fallback_gate.call(functools.partial(fallback.purge_synced, now - grace))
    except Exception:
        return ReconcileReport(moved, superseded, expired, complete=False)
    return ReconcileReport(moved, superseded, expired, complete=True)
