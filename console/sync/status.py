"""What the engine tells its consumers about itself: state, counters, reasons."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from console.domain.access import Identity, Role


class SyncState(StrEnum):
    STARTING = "starting"
    CACHED = "cached"  # the cached picture is shown; no contact yet
    CONNECTING = "connecting"
    LIVE = "live"  # the stream is open
    RECONNECTING = "reconnecting"  # waiting to try again; `detail` says why
    # The backend refused the credentials (or locked the account): not tried again,
    # which would only lock it (again), until someone signs in anew; `detail` says why.
    REFUSED = "refused"
    STOPPED = "stopped"


@dataclass(frozen=True)
class SyncStatus:
    state: SyncState = SyncState.STARTING
    since: float = 0.0  # wall time the state began
    retry_at: float | None = None  # wall time of the next attempt while reconnecting
    detail: str = ""
    last_event_at: float | None = None  # wall time an event last arrived
    synced_at: float | None = None  # wall time of the snapshot the cache started from
    last_event_id: int = 0
    applied: int = 0
    rejected: int = 0  # events and stream frames that could not be applied
    last_rejected: str = ""
    snapshots: int = 0
    reconnects: int = 0
    pending_actions: int = 0
    cache_notice: str | None = None
    operator: str | None = None  # the name the backend records the signed-in person by
    roles: frozenset[Role] = frozenset()

    @property
    def identity(self) -> Identity | None:
        return Identity(self.operator, self.roles) if self.operator else None
