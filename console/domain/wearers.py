"""One wearer's record beyond the board: what the wearer view shows.

The board and the cache hold only what monitoring needs (a reference, devices,
curfew, statuses, alerts). The rest (language, phone, order conditions, past
alerts) is personal data the backend gives on request: each request is audited
there, and the console never writes it to its cache."""

from __future__ import annotations

from dataclasses import dataclass

from console.domain.alerts import Alert, Suspension
from console.domain.cases import CaseEntry
from console.domain.fleet import DeviceKind, Wearer


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    id: str
    kind: DeviceKind
    serial: str
    fitted_at: float | None = None


@dataclass(frozen=True, slots=True)
class WearerRecord:
    wearer: Wearer
    devices: tuple[DeviceRecord, ...]
    language: str
    interpreter: bool  # an interpreter is needed to speak with them
    phone: str | None  # None: not recorded, a data-quality flag (ICIBI §5.92)
    conditions: tuple[str, ...]  # the order's conditions, as the order words them
    suspensions: tuple[Suspension, ...]
    alerts: tuple[Alert, ...]  # open and past, newest first
    case: tuple[CaseEntry, ...] = ()  # the breach case timeline, oldest first

    def suspended(self, now: float) -> Suspension | None:
        """The suspension that holds now, if any."""
        return next((s for s in self.suspensions if s.holds(now)), None)
