"""Wearers, devices and device status, with the rules that judge them:
connection (online, stale, offline), curfew, low battery.

Pure code: no I/O, no clocks. Every function that needs the time takes `now`
(epoch seconds) so the same rules serve the live console, the offline cache and
the simulator.
"""

from __future__ import annotations

import functools
from datetime import time
from enum import StrEnum

import msgspec

from console.domain.clock import DAY, local_time


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


class Curfew(msgspec.Struct, frozen=True, gc=False):
    """Structs, as DeviceStatus: a picture of 100,000 wearers crosses from the sync
    process to the window's (console/sync/process.py), and msgspec reads Structs in
    C three times faster than dataclasses."""

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


class Wearer(msgspec.Struct, frozen=True, gc=False):
    id: str
    ref: str  # case reference shown to operators; the board needs no name or place
    curfew: Curfew | None = None


class Device(msgspec.Struct, frozen=True, gc=False):
    id: str
    wearer_id: str
    kind: DeviceKind


class DeviceStatus(msgspec.Struct, frozen=True, gc=False):
    """A Struct, not a dataclass: tens of thousands are made a second while the
    console catches up. A Struct is built several times faster, and holding only
    strings, numbers and flags it can be in no reference cycle, so the garbage
    collector need not track it (gc=False)."""

    device_id: str
    ts: float  # last contact, epoch seconds
    battery: float  # percent
    charging: bool
    strap: str | None  # "ok" / "open"; None for devices without a strap
    gps_fix: bool | None  # None for devices without GPS
    at_home: bool | None  # presence at the curfew address; None when unknown


def low_battery(status: DeviceStatus | None) -> bool:
    """Low enough to call the wearer about; a reason to call, not a breach."""
    return status is not None and status.battery < LOW_BATTERY


def lateness(kind: DeviceKind, last_contact: float, now: float) -> float:
    """How many of the kind's reporting intervals have passed since last contact."""
    return (now - last_contact) / EXPECTED_INTERVAL[kind]


def connection(kind: DeviceKind, last_contact: float | None, now: float) -> Connection:
    if last_contact is None:
        return Connection.OFFLINE
    late = lateness(kind, last_contact, now)
    if late >= OFFLINE_AFTER_INTERVALS:
        return Connection.OFFLINE
    if late >= STALE_AFTER_INTERVALS:
        return Connection.STALE
    return Connection.ONLINE


def curfew_state(curfew: Curfew | None, at_home: bool | None, local: time) -> CurfewState:
    """`local` is the UK wall-clock time (local_time(now)), computed once per pass."""
    if curfew is None or not curfew.covers(local):
        return CurfewState.NONE
    if at_home is None:
        return CurfewState.UNKNOWN
    return CurfewState.INSIDE if at_home else CurfewState.OUTSIDE
