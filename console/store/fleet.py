"""The fleet's tables: wearers, devices and each device's latest status."""

from __future__ import annotations

import math

from console.domain import Curfew, Device, DeviceKind, DeviceStatus, Wearer
from console.store.rows import Damaged, flag, moment, number, one_of, opt_flag, opt_text, text

META_NUMBERS = {"last_event_id": int, "snapshot_event_id": int, "applied_since_snapshot": int,
                "server_time": float, "clock_rate": float, "snapshot_at": float}
STRAPS = (None, "ok", "open")
STATUS_COLUMNS = "device_id, ts, battery, charging, strap, gps_fix, at_home"


def status_row(s: DeviceStatus, event_id: int) -> tuple:
    return (s.device_id, s.ts, s.battery, int(s.charging), s.strap,
            None if s.gps_fix is None else int(s.gps_fix),
            None if s.at_home is None else int(s.at_home), event_id)


def meta_from_row(r: tuple) -> tuple:
    key, value = r
    if key in META_NUMBERS and not 0 <= META_NUMBERS[key](text(value)) < math.inf:
        raise Damaged(f"not a number: {value!r:.40}")
    return key, value


def wearer_from_row(r: tuple) -> Wearer:
    id_, ref, curfew = r
    return Wearer(text(id_), text(ref), Curfew.parse(opt_text(curfew)))


def device_from_row(r: tuple) -> Device:
    id_, wearer_id, kind = r
    return Device(text(id_), text(wearer_id), DeviceKind(text(kind)))


def status_from_row(r: tuple) -> DeviceStatus:
    device_id, ts, battery, charging, strap, gps_fix, at_home = r
    return DeviceStatus(text(device_id), moment(ts), number(battery, 0, 100), flag(charging),
                        one_of(strap, STRAPS), opt_flag(gps_fix), opt_flag(at_home))


