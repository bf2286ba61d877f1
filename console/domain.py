"""Wearers, devices, device status and alerts, with the rules that judge them.

Pure code: no I/O, no clocks. Every function that needs the time takes `now`
(epoch seconds) so the same rules serve the live console, the offline cache and
the simulator.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from enum import Enum, StrEnum
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/London")
DAY = 86_400.0


class DeviceKind(StrEnum):
    GPS = "gps"  # fitted ankle tag
    RF = "rf"  # RF tag with home monitoring unit
    NFD = "nfd"  # non-fitted device, biometric check-ins
    WRISTBAND = "wristband"  # barcode / RFID wristband scans

    @property
    def label(self) -> str:
        return {
            "gps": "GPS tag",
            "rf": "RF tag + HMU",
            "nfd": "Non-fitted device",
            "wristband": "Wristband",
        }[self.value]


# How often each kind normally makes contact. Lateness is judged against this,
# so a wristband scanned twice a day is not "offline" after an hour.
EXPECTED_INTERVAL = {
    DeviceKind.GPS: 60.0,
    DeviceKind.RF: 900.0,
    DeviceKind.NFD: 3_600.0,
    DeviceKind.WRISTBAND: 12 * 3_600.0,
}
STALE_AFTER_INTERVALS = 3
OFFLINE_AFTER_INTERVALS = 10
LOW_BATTERY = 20.0  # ICIBI §5.74: "when it's on 20% battery, they should call"


class Connection(StrEnum):
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


class CurfewState(StrEnum):
    INSIDE = "inside"
    OUTSIDE = "outside"
    NONE = "no curfew now"
    UNKNOWN = "unknown"


# The sixteen breach types of ICIBI §5.13, with the wire names used by the protocol.
BREACH_TYPES = {
    "battery": "Battery breach",
    "absence_15min": "15-minute absence",
    "curfew_missed": "Full curfew missed",
    "interference_pid": "Interference PID",
    "not_available_for_installation": "Not available for installation",
    "inability_to_monitor": "Inability to monitor",
    "strap_tamper": "Strap tamper",
    "hmu_interference": "Interference with HMU",
    "ac_power_loss": "AC power loss",
    "monitor_movement": "Monitor movement",
    "moved_without_variation": "Moved without variation",
    "abusive_behaviour": "Abusive behaviour",
    "negative_ram": "Negative RAM",
    "unsuccessful_induction_visit": "Unsuccessful visit for induction",
    "failed_enrolment": "Failed enrolment",
    "location_breach": "Location breach",
}

URGENT_TYPES = {"strap_tamper", "curfew_missed"}
URGENT_OUT_OF_CONTACT = 7 * DAY  # ICIBI §5.14


class AlertState(StrEnum):
    """ISA-18.2 reduced to what the protocol carries: an alert is open until it is
    both acknowledged and no longer active."""

    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Priority(int, Enum):
    URGENT = 1
    HIGH = 2
    NORMAL = 3

    @property
    def label(self) -> str:
        # A word and a symbol, so that priority never depends on colour alone.
        return {1: "▲ P1 urgent", 2: "◆ P2 high", 3: "● P3 normal"}[self.value]


@dataclass(frozen=True, slots=True)
class Curfew:
    start: time  # local (Europe/London) wall-clock times; start > end spans midnight
    end: time

    def applies(self, now: float) -> bool:
        return self.covers(local_time(now))

    def covers(self, t: time) -> bool:
        """Whether the local wall-clock time t falls in the curfew."""
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    @property
    def length(self) -> float:
        """Seconds from start to end."""
        start = self.start.hour * 3600 + self.start.minute * 60
        end = self.end.hour * 3600 + self.end.minute * 60
        return (end - start) % DAY

    @staticmethod
    def parse(text: str | None) -> Curfew | None:
        """'19:00-07:00' or None. Equal curfews come back as one shared object: a
        fleet has a handful of distinct curfews, and the board judges each once."""
        return _parse_curfew(text) if text else None

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@functools.lru_cache(maxsize=1024)
def _parse_curfew(text: str) -> Curfew:
    start, end = text.split("-")
    return Curfew(time.fromisoformat(start), time.fromisoformat(end))


@dataclass(frozen=True, slots=True)
class Wearer:
    id: str
    ref: str  # case reference shown to operators; the board needs no name or place
    curfew: Curfew | None = None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    wearer_id: str
    kind: DeviceKind


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    ts: float  # last contact, epoch seconds
    battery: float  # percent, 0..100
    charging: bool
    strap: str | None  # "ok" / "open"; None for devices without a strap
    gps_fix: bool | None  # None for devices without GPS
    at_home: bool | None  # presence at the curfew address; None when unknown


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    state: AlertState
    at: float
    by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    wearer_id: str
    device_id: str
    type: str
    raised_at: float
    state: AlertState
    active: bool  # the condition that raised it is still present
    history: tuple[HistoryEntry, ...] = field(default=())

    @property
    def is_open(self) -> bool:
        return self.state is not AlertState.CLOSED

    @property
    def type_label(self) -> str:
        return BREACH_TYPES.get(self.type, self.type)


class LifecycleError(ValueError):
    pass


def acknowledge(alert: Alert, at: float, by: str, note: str) -> Alert:
    """An acknowledged alert closes at once if its condition has already cleared."""
    if alert.state is not AlertState.UNACKNOWLEDGED:
        raise LifecycleError(f"alert {alert.id} is {alert.state.value}, not unacknowledged")
    history = alert.history + (HistoryEntry(AlertState.ACKNOWLEDGED, at, by, note),)
    state = AlertState.ACKNOWLEDGED
    if not alert.active:
        state = AlertState.CLOSED
        history += (HistoryEntry(AlertState.CLOSED, at, by),)
    return replace(alert, state=state, history=history)


def return_to_normal(alert: Alert, at: float) -> Alert:
    """The condition cleared. An unacknowledged alert stays open: someone must see it."""
    if not alert.active or not alert.is_open:
        return alert
    if alert.state is AlertState.ACKNOWLEDGED:
        return replace(
            alert,
            active=False,
            state=AlertState.CLOSED,
            history=alert.history + (HistoryEntry(AlertState.CLOSED, at),),
        )
    return replace(alert, active=False)


def connection(kind: DeviceKind, last_contact: float | None, now: float) -> Connection:
    if last_contact is None:
        return Connection.OFFLINE
    late = (now - last_contact) / EXPECTED_INTERVAL[kind]
    if late >= OFFLINE_AFTER_INTERVALS:
        return Connection.OFFLINE
    if late >= STALE_AFTER_INTERVALS:
        return Connection.STALE
    return Connection.ONLINE


def local_time(now: float) -> time:
    return datetime.fromtimestamp(now, LOCAL_TZ).time()


def curfew_state(curfew: Curfew | None, at_home: bool | None, local: time) -> CurfewState:
    """`local` is the UK wall-clock time (local_time(now)), computed once per pass."""
    if curfew is None or not curfew.covers(local):
        return CurfewState.NONE
    if at_home is None:
        return CurfewState.UNKNOWN
    return CurfewState.INSIDE if at_home else CurfewState.OUTSIDE


def priority(alert: Alert, last_contact: float | None, now: float) -> Priority:
    """ICIBI §5.14: strap tamper, full curfew missed and more than 7 days out of
    contact come first; battery breaches, most of them noise (§5.13), come last."""
    if alert.type in URGENT_TYPES:
        return Priority.URGENT
    if alert.type == "inability_to_monitor" and (
        last_contact is None or now - last_contact > URGENT_OUT_OF_CONTACT
    ):
        return Priority.URGENT
    if alert.type == "battery":
        return Priority.NORMAL
    return Priority.HIGH


def queue_key(alert: Alert, last_contact: float | None, now: float) -> tuple:
    """Alert queue order: priority, then oldest first."""
    return (priority(alert, last_contact, now), alert.raised_at, alert.id)


def format_age(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / DAY:.0f} d"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
