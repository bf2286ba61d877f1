"""Wire schema: JSON objects <-> domain objects, shared by the client and the simulator.

Decoding is strict about what it uses and silent about what it does not: unknown
fields are ignored, and a bad value raises BadEvent with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import orjson

from console.domain import (
    Alert,
    AlertState,
    Curfew,
    Device,
    DeviceKind,
    DeviceStatus,
    HistoryEntry,
    Wearer,
    iso,
)

API = "/api/v1"
EVENT_TYPES = ("device.status", "alert.raised", "alert.updated", "alert.cleared", "reset")
EARLIEST = datetime(2000, 1, 1).timestamp()
MAX_CLOCK_SKEW = 600.0  # a timestamp this far past the server clock is a lie
MAX_TEXT = 4_000


class BadEvent(ValueError):
    """An event or object that cannot be applied; the reason says why."""


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    payload: DeviceStatus | Alert | None  # None for reset


def _get(d: dict, key: str, kind: type | tuple, optional: bool = False):
    if not isinstance(d, dict):
        raise BadEvent(f"expected an object, got {type(d).__name__}")
    value = d.get(key)
    if value is None:
        if optional:
            return None
        raise BadEvent(f"missing {key}")
    # bool is an int in Python; a JSON true is never a number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadEvent(f"{key}: expected {kind}, got bool")
    if not isinstance(value, kind):
        raise BadEvent(f"{key}: expected {kind}, got {type(value).__name__}")
    if isinstance(value, str) and (not value or len(value) > MAX_TEXT):
        raise BadEvent(f"{key}: empty or longer than {MAX_TEXT} characters")
    return value


def parse_ts(value: object, now: float | None) -> float:
    if not isinstance(value, str) or len(value) > 40:
        raise BadEvent(f"timestamp: expected an ISO 8601 string, got {value!r:.60}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise BadEvent(f"timestamp does not parse: {value!r:.60}") from None
    if dt.tzinfo is None:
        raise BadEvent(f"timestamp without a time zone: {value!r:.60}")
    ts = dt.timestamp()
    if ts < EARLIEST:
        raise BadEvent(f"timestamp before 2000: {value}")
    if now is not None and ts > now + MAX_CLOCK_SKEW:
        raise BadEvent(f"timestamp in the future: {value}")
    return ts


def decode_status(d: dict, now: float | None) -> DeviceStatus:
    battery = _get(d, "battery", (int, float))
    if not math.isfinite(battery) or not 0 <= battery <= 100:
        raise BadEvent(f"battery outside 0-100: {battery}")
    strap = _get(d, "strap", str, optional=True)
    if strap not in (None, "ok", "open"):
        raise BadEvent(f"strap: unknown value {strap!r:.40}")
    return DeviceStatus(
        device_id=_get(d, "device_id", str),
        ts=parse_ts(d.get("ts"), now),
        battery=float(battery),
        charging=_get(d, "charging", bool),
        strap=strap,
        gps_fix=_get(d, "gps_fix", bool, optional=True),
        at_home=_get(d, "at_home", bool, optional=True),
    )


def encode_status(s: DeviceStatus) -> dict:
    return {
        "device_id": s.device_id,
        "ts": iso(s.ts),
        "battery": round(s.battery, 1),
        "charging": s.charging,
        "strap": s.strap,
        "gps_fix": s.gps_fix,
        "at_home": s.at_home,
    }


def _state(value: object) -> AlertState:
    try:
        return AlertState(value)
    except ValueError:
        raise BadEvent(f"unknown alert state {value!r:.40}") from None


def decode_alert(d: dict, now: float | None) -> Alert:
    history = _get(d, "history", list, optional=True) or []
    if len(history) > 1_000:
        raise BadEvent("history longer than 1000 entries")
    return Alert(
        id=_get(d, "id", str),
        wearer_id=_get(d, "wearer_id", str),
        device_id=_get(d, "device_id", str),
        type=_get(d, "type", str),
        raised_at=parse_ts(d.get("raised_at"), now),
        state=_state(d.get("state")),
        active=_get(d, "active", bool),
        history=tuple(
            HistoryEntry(
                state=_state(_get(h, "state", str)),
                at=parse_ts(h.get("at"), now),
                by=_get(h, "by", str, optional=True),
                note=_get(h, "note", str, optional=True),
            )
            for h in history
        ),
    )


def encode_alert(a: Alert) -> dict:
    return {
        "id": a.id,
        "wearer_id": a.wearer_id,
        "device_id": a.device_id,
        "type": a.type,
        "raised_at": iso(a.raised_at),
        "state": a.state.value,
        "active": a.active,
        "history": [
            {"state": h.state.value, "at": iso(h.at), "by": h.by, "note": h.note}
            for h in a.history
        ],
    }


def decode_wearer(d: dict) -> Wearer:
    curfew = _get(d, "curfew", str, optional=True)
    try:
        parsed = Curfew.parse(curfew)
    except ValueError:
        raise BadEvent(f"curfew does not parse: {curfew!r:.40}") from None
    return Wearer(id=_get(d, "id", str), ref=_get(d, "ref", str), curfew=parsed)


def encode_wearer(w: Wearer) -> dict:
    return {"id": w.id, "ref": w.ref, "curfew": str(w.curfew) if w.curfew else None}


def decode_device(d: dict) -> Device:
    if not isinstance(d, dict):
        raise BadEvent(f"expected an object, got {type(d).__name__}")
    try:
        kind = DeviceKind(d.get("kind"))
    except ValueError:
        raise BadEvent(f"unknown device kind {d.get('kind')!r:.40}") from None
    return Device(id=_get(d, "id", str), wearer_id=_get(d, "wearer_id", str), kind=kind)


def encode_device(dev: Device) -> dict:
    return {"id": dev.id, "wearer_id": dev.wearer_id, "kind": dev.kind.value}


def event_id_of(text: str | None) -> int | None:
    """An event id as the protocol writes it (1 to 18 ASCII digits), else None.
    str.isdigit() alone also accepts "²", which int() then refuses."""
    if text is None or not 0 < len(text) <= 18 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def decode_event(event_id: str | None, event_type: str, data: bytes, now: float | None) -> Event:
    """One SSE frame to an Event; raises BadEvent for anything that cannot be applied."""
    if event_id is None:
        raise BadEvent("event without an id")
    number = event_id_of(event_id)
    if number is None:
        raise BadEvent(f"event id is not a positive integer: {event_id!r:.40}")
    if event_type not in EVENT_TYPES:
        raise BadEvent(f"unknown event type {event_type!r:.40}")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadEvent(f"data is not JSON: {e}") from None
    if event_type == "reset":
        payload = None
    elif event_type == "device.status":
        payload = decode_status(body, now)
    else:
        payload = decode_alert(body, now)
        if (event_type == "alert.cleared") != (payload.state is AlertState.CLOSED):
            raise BadEvent(f"{event_type} with state {payload.state.value}")
    return Event(number, event_type, payload)
