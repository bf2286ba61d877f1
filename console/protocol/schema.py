"""The protocol's wire types (docs/protocol.md), each defined once with its limits.

These msgspec Structs are what the client decodes, what the simulator encodes and
validates requests with, and what its /openapi.json describes. Decoding is strict
about what it uses and silent about what it does not: unknown fields are ignored,
and anything else that does not fit raises BadEvent with msgspec's reason, which
names the field ("Expected `float` <= 100.0 - at `$.battery`").

The rules a JSON Schema cannot say are here too, next to the types: timestamps
are not before 2000 nor from the future (`instant`), alert.cleared carries a
closed alert (`decode_event`), event ids are 1 to 18 ASCII digits (`event_id_of`).

The domain keeps its own types (console/domain): epoch seconds rather than ISO
strings, a parsed Curfew, a tuple of history, and no limits. Each wire type
converts to and from its domain type here (`to_domain`, `from_domain`), so the
rest of the console sees only domain types.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta, Raw, Struct

from console import domain
from console.changes import Event
from console.domain import EARLIEST, AlertState, DeviceKind, Outcome
from console.domain.cases import EntryKind, Sanction

API = "/api/v1"
MAX_CLOCK_SKEW = 600.0  # a timestamp this far past the server clock is a lie
MAX_CLOCK_RATE = 10_000.0  # a simulator runs at most this much faster than real time
MAX_NOTE = 2_000
MAX_RECORD_ALERTS = 500  # a wearer's record lists at most this many, the newest

# No NUL in ids and names: SQLite's JSON functions, which the store writes batches
# through (console/store/database.py, insert_rows), end a string at its first NUL.
Id = Annotated[str, Meta(min_length=1, max_length=200, pattern="^[^\x00]*$",
                         description="opaque, never reused")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern="^[^\x00]*$")]
Note = Annotated[str, Meta(max_length=MAX_NOTE)]
# A note that must say something: closing and shelving need a reason. The pattern
# asks for a character that is white space neither to Python nor to JavaScript
# (the schema's readers): their \s differ on \x1c-\x1f, \x85 and \ufeff.
Reason = Annotated[str, Meta(min_length=1, max_length=MAX_NOTE,
                             pattern=r"[^\s\x1c-\x1f\x85\ufeff]")]
# A shelving's reason goes into a history note after "shelved: ", which must still
# be a Note: a 2,000-character reason made an alert no console could read.
MAX_SHELVE_REASON = MAX_NOTE - len(domain.SHELVED)
ShelveReason = Annotated[str, Meta(min_length=1, max_length=MAX_SHELVE_REASON,
                                   pattern=r"[^\s\x1c-\x1f\x85\ufeff]")]
# The time itself is checked by `instant`: not before 2000, not from the future.
Timestamp = Annotated[datetime, Meta(tz=True, description="ISO 8601 with a zone")]
T = TypeVar("T")


class BadEvent(ValueError):
    """An event or object that cannot be applied; the reason says why."""


def instant(value: datetime, now: float | None, where: str = "") -> float:
    """A wire timestamp as epoch seconds, if it can be true: not before 2000 and,
    given the server's `now`, not more than MAX_CLOCK_SKEW after it. `where` is
    the field's path, for the reason."""
    ts = value.timestamp()
    at = f" - at `$.{where}`" if where else ""
    if ts < EARLIEST:
        raise BadEvent(f"Timestamp {value.isoformat()} is before 2000{at}")
    if now is not None and ts > now + MAX_CLOCK_SKEW:
        raise BadEvent(f"Timestamp {value.isoformat()} is in the future{at}")
    return ts


def wire_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- the fleet ------------------------------------------------------------------


class DeviceStatus(Struct):
    """A device's latest report."""

    device_id: Id
    ts: Annotated[Timestamp, Meta(description="time of the device's last contact")]
    battery: Annotated[float, Meta(ge=0, le=100, description="percent")]
    charging: Annotated[bool, Meta(description="on the charger")]
    strap: Annotated[Literal["ok", "open"] | None,
                     Meta(description="null for devices without a strap")] = None
    gps_fix: Annotated[bool | None, Meta(description="null for devices without GPS")] = None
    at_home: Annotated[bool | None, Meta(
        description="present at the curfew address (HMU range or home zone); null if unknown")] = None

    @classmethod
    def from_domain(cls, s: domain.DeviceStatus) -> DeviceStatus:
        return cls(s.device_id, wire_time(s.ts), round(s.battery, 1), s.charging, s.strap,
                   s.gps_fix, s.at_home)

    def to_domain(self, now: float | None) -> domain.DeviceStatus:
        return domain.DeviceStatus(self.device_id, instant(self.ts, now, "ts"), self.battery,
                                   self.charging, self.strap, self.gps_fix, self.at_home)


class Wearer(Struct):
    id: Id
    ref: Annotated[Name, Meta(description="case reference shown to operators")]
    curfew: Annotated[str, Meta(
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
        description="local Europe/London HH:MM-HH:MM, may span midnight")] | None = None

    @classmethod
    def from_domain(cls, w: domain.Wearer) -> Wearer:
        return cls(w.id, w.ref, str(w.curfew) if w.curfew else None)

    def to_domain(self) -> domain.Wearer:
        return domain.Wearer(self.id, self.ref, domain.Curfew.parse(self.curfew))


class Device(Struct):
    id: Id
    wearer_id: Id
    kind: DeviceKind
    status: DeviceStatus | None = None

    @classmethod
    def from_domain(cls, d: domain.Device, status: domain.DeviceStatus | None) -> Device:
        return cls(d.id, d.wearer_id, d.kind,
                   None if status is None else DeviceStatus.from_domain(status))

    def to_domain(self, now: float | None) -> tuple[domain.Device, domain.DeviceStatus | None]:
        status = None if self.status is None else self.status.to_domain(now)
        return domain.Device(self.id, self.wearer_id, self.kind), status


# -- alerts ---------------------------------------------------------------------


class HistoryEntry(Struct):
    state: AlertState
    at: Timestamp
    by: Annotated[Name | None, Meta(description="the operator, if one acted")] = None
    note: Note | None = None
    outcome: Annotated[Outcome | None, Meta(description="on the entry that closed it")] = None

    @classmethod
    def from_domain(cls, h: domain.HistoryEntry) -> HistoryEntry:
        return cls(h.state, wire_time(h.at), h.by, h.note, h.outcome)

    def to_domain(self, now: float | None, where: str) -> domain.HistoryEntry:
        return domain.HistoryEntry(self.state, instant(self.at, now, f"{where}.at"), self.by,
                                   self.note, self.outcome)


class Evidence(Struct):
    """What the device last reported before the alert was raised: a device silent
    at home, or flat on its charger, is more likely a fault than a breach."""

    at_home: Annotated[bool | None, Meta(description="null for devices that cannot tell")] = None
    charging: bool = False


class Alert(Struct):
    """A breach and its handling. The condition (`active`) and the handling (`state`:
    unacknowledged, claimed by one operator, in work, closed with an outcome) are
    independent: a condition that clears before anyone handled it stays open."""

    id: Id
    wearer_id: Id
    device_id: Id
    type: Annotated[Name, Meta(description="one of the sixteen breach types of ICIBI §5.13; "
                                           "clients show unknown types by name")]
    raised_at: Timestamp
    state: AlertState
    active: Annotated[bool, Meta(description="the condition that raised it is still present")]
    history: Annotated[list[HistoryEntry], Meta(max_length=1_000)] = []
    holder: Annotated[Name | None, Meta(
        description="the operator who claimed it, while claimed or in work")] = None
    outcome: Annotated[Outcome | None, Meta(description="why it was closed")] = None
    shelved_until: Annotated[Timestamp | None, Meta(
        description="quiet until then, at most 8 hours after shelving")] = None
    shelved_reason: Note | None = None
    cleared_at: Annotated[Timestamp | None, Meta(
        description="when the condition cleared (`active` turned false)")] = None
    evidence: Evidence | None = None
    suppressed: Annotated[domain.SuspensionReason | None, Meta(
        description="raised while the wearer's monitoring was suspended for this reason: "
                    "recorded, and never notified")] = None

    @classmethod
    def from_domain(cls, a: domain.Alert) -> Alert:
        evidence = None if a.evidence is None else Evidence(a.evidence.at_home, a.evidence.charging)
        return cls(a.id, a.wearer_id, a.device_id, a.type, wire_time(a.raised_at), a.state,
                   a.active, [HistoryEntry.from_domain(h) for h in a.history], a.holder,
                   a.outcome, None if a.shelved_until is None else wire_time(a.shelved_until),
                   a.shelved_reason, None if a.cleared_at is None else wire_time(a.cleared_at),
                   evidence, a.suppressed)

    def to_domain(self, now: float | None) -> domain.Alert:
        # shelved_until is in the future by design: only its lower bound is checked.
        until = None if self.shelved_until is None else instant(self.shelved_until, None,
                                                                 "shelved_until")
        return domain.Alert(
            self.id, self.wearer_id, self.device_id, self.type,
            instant(self.raised_at, now, "raised_at"), self.state, self.active,
            tuple(h.to_domain(now, f"history[{i}]") for i, h in enumerate(self.history)),
            self.holder, self.outcome, until, self.shelved_reason,
            None if self.cleared_at is None else instant(self.cleared_at, now, "cleared_at"),
            None if self.evidence is None else domain.Evidence(self.evidence.at_home,
                                                               self.evidence.charging),
            self.suppressed)


# -- a wearer's record (GET /wearers/{id}) ---------------------------------------------


class Suspension(Struct):
    """Monitoring suspended by design, from `start` to `end`, repeating every
    `every_days` days when given (a weekly hospital appointment)."""

    reason: domain.SuspensionReason
    start: Timestamp
    end: Timestamp
    # A whole number of days; as a number, not an integer, because JSON does not tell
    # 7 from 7.0 and a client may send either.
    every_days: Annotated[float, Meta(ge=1, le=366, multiple_of=1)] | None = None

    @classmethod
    def from_domain(cls, s: domain.Suspension) -> Suspension:
        every = None if s.every is None else round(s.every / domain.DAY)
        return cls(s.reason, wire_time(s.start), wire_time(s.end), every)

    def to_domain(self, wearer_id: str, where: str) -> domain.Suspension:
        out = domain.Suspension(wearer_id, self.reason, instant(self.start, None),
                                instant(self.end, None),
                                None if self.every_days is None else self.every_days * domain.DAY)
        if (problem := out.problem()) is not None:
            raise BadEvent(f"{where}: {problem}")
        return out


class DeviceRecord(Struct):
    id: Id
    kind: DeviceKind
    serial: Name
    fitted_at: Timestamp | None = None


class NewCaseEntry(Struct):
    """A case entry as an operator records it: POST /wearers/{id}/case. What each
    kind needs (breaches named, a decision maker and reasons) is
    console/domain/cases.py's `problem`, which the backend applies (422)."""

    kind: EntryKind
    at: Annotated[Timestamp, Meta(description="when it happened, not when it was recorded")]
    alert_ids: Annotated[list[Id], Meta(max_length=100, description="the breaches it concerns")] = []
    note: Note = ""
    decision_maker: Name | None = None
    sanction: Sanction | None = None

    @classmethod
    def from_domain(cls, e: domain.CaseEntry) -> NewCaseEntry:
        return cls(e.kind, wire_time(e.at), list(e.alert_ids), e.note, e.decision_maker, e.sanction)

    def to_domain(self, now: float | None) -> domain.CaseEntry:
        return domain.CaseEntry(self.kind, instant(self.at, now, "at"), tuple(self.alert_ids),
                                self.note, self.decision_maker, self.sanction)


class CaseEntry(NewCaseEntry, kw_only=True):
    """A case entry as the backend recorded it."""

    id: Id
    recorded_at: Timestamp
    recorded_by: Name

    @classmethod
    def from_domain(cls, e: domain.CaseEntry) -> CaseEntry:
        return cls(kind=e.kind, at=wire_time(e.at), alert_ids=list(e.alert_ids), note=e.note,
                   decision_maker=e.decision_maker, sanction=e.sanction, id=e.id,
                   recorded_at=wire_time(e.recorded_at), recorded_by=e.recorded_by)

    def to_domain(self, now: float | None, where: str = "") -> domain.CaseEntry:
        return replace(super().to_domain(now), id=self.id, recorded_by=self.recorded_by,
                       recorded_at=instant(self.recorded_at, now, f"{where}recorded_at"))


class WearerRecord(Struct):
    """One wearer beyond the board, for the wearer view: personal data, given only
    on request, each request audited by the backend; the console does not cache it."""

    wearer: Wearer
    devices: Annotated[list[DeviceRecord], Meta(max_length=20)]
    language: Name
    interpreter: Annotated[bool, Meta(description="an interpreter is needed to speak with them")]
    phone: Annotated[str, Meta(pattern=r"^\+?[0-9 ]{6,20}$",
                               description="null: not recorded")] | None = None
    conditions: Annotated[list[Note], Meta(max_length=50)] = []
    suspensions: Annotated[list[Suspension], Meta(max_length=100)] = []
    alerts: Annotated[list[Alert], Meta(max_length=MAX_RECORD_ALERTS,
                                        description="open and past, newest first")] = []
    case: Annotated[list[CaseEntry], Meta(max_length=1_000,
                                          description="the breach case timeline, oldest first")] = []

    def to_domain(self, now: float | None) -> domain.WearerRecord:
        w = self.wearer.id
        return domain.WearerRecord(
            self.wearer.to_domain(),
            tuple(domain.DeviceRecord(d.id, d.kind, d.serial, None if d.fitted_at is None
                                      else instant(d.fitted_at, now, f"devices[{i}].fitted_at"))
                  for i, d in enumerate(self.devices)),
            self.language, self.interpreter, self.phone, tuple(self.conditions),
            tuple(s.to_domain(w, f"suspensions[{i}]") for i, s in enumerate(self.suspensions)),
            tuple(a.to_domain(now) for a in self.alerts),
            tuple(e.to_domain(now, f"case[{i}].") for i, e in enumerate(self.case)))


# -- snapshot, session, requests, problems ----------------------------------------

W, D, A = TypeVar("W"), TypeVar("D"), TypeVar("A")


class SnapshotOf(Struct, Generic[W, D, A], kw_only=True):
    """A snapshot with items of any type: the client reads it as SnapshotOf[Raw, Raw,
    Raw] to decode each item on its own, so that one bad item costs only itself."""

    stream_id: Annotated[Name, Meta(description="names the event sequence")]
    server_time: Timestamp
    clock_rate: Annotated[float, Meta(gt=0, le=MAX_CLOCK_RATE,
                                      description="server seconds per real second")] = 1.0
    # An event id has at most 18 digits (event_id_of).
    last_event_id: Annotated[int, Meta(ge=0, lt=10**18, description=(
        "the last event already reflected in the snapshot"))]
    wearers: list[W]
    devices: list[D]
    alerts: Annotated[list[A], Meta(description="the open alerts, with their history")]


class Snapshot(SnapshotOf[Wearer, Device, Alert]):
    """The whole picture: GET /snapshot."""


class SignIn(Struct):
    username: Name
    password: Name


class Operator(Struct):
    id: Id
    name: Name
    roles: Annotated[list[Name], Meta(max_length=100)]


Token = Annotated[str, Meta(min_length=1, max_length=4_000)]


class Session(Struct):
    """The answer to signing in or refreshing. `token` is sent as `Authorization:
    Bearer` until `expires_in` seconds have passed; `refresh_token` then buys a new
    session once (POST /session/refresh). A backend whose tokens do not expire
    sends neither."""

    token: Token
    operator: Operator
    expires_in: Annotated[int, Meta(ge=1)] | None = None
    refresh_token: Token | None = None


class Refresh(Struct):
    """The body of POST /session/refresh."""

    refresh_token: Token


class Acknowledgement(Struct):
    """The body of POST /alerts/{id}/acknowledge."""

    note: Note


class Claim(Struct):
    """The body of POST /alerts/{id}/claim. What another operator holds is taken
    only with take_over, and the history says from whom."""

    take_over: bool = False


class Closing(Struct):
    """The body of POST /alerts/{id}/close: only the holder closes, with both."""

    outcome: Outcome
    note: Reason


class Shelving(Struct):
    """The body of POST /alerts/{id}/shelve: quiet until `until`, more than now and
    at most 8 hours after it (console/domain/alerts.py, MAX_SHELVE)."""

    until: Timestamp
    reason: ShelveReason


class Problem(Struct, omit_defaults=True):
    """An error answer (RFC 9457), as application/problem+json."""

    type: str
    title: str
    status: Annotated[int, Meta(ge=400, le=599)]
    detail: str
    alert: Annotated[Alert | None, Meta(
        description="a 409 on an alert: the alert as it stands now")] = None


class Reset(Struct):
    """The data of a reset event."""

    reason: str = ""


class GroundTruth(Struct):
    """Simulator only: whether a breach was real non-compliance or an equipment fault."""

    alert_id: Id
    cause: Literal["non_compliance", "equipment_fault"]


class Viewed(Struct):
    """Simulator only (GET /sim/audit): an operator viewed a wearer's personal data."""

    at: Timestamp
    operator: Name
    wearer_id: Id


def components() -> dict[str, dict]:
    """The JSON Schemas of every type above and of trails.py's, for /openapi.json's
    components."""
    from console.protocol import trails  # it builds on this module's types

    _, found = msgspec.json.schema_components(
        [Snapshot, Session, SignIn, Refresh, Acknowledgement, Claim, Closing, Shelving, Problem, Reset,
         GroundTruth, WearerRecord, NewCaseEntry, CaseEntry, Viewed, *trails.TYPES],
        ref_template="#/components/schemas/{name}")
    return found


# -- decoding and encoding ----------------------------------------------------------

encode = msgspec.json.Encoder().encode
_decoders: dict[type, msgspec.json.Decoder] = {}


def decode(data: bytes | Raw, type_: type[T]) -> T:
    """One JSON document as `type_`, or BadEvent saying why not."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as e:
        raise BadEvent(str(e)) from None
    except msgspec.DecodeError as e:
        raise BadEvent(f"data is not JSON: {e}") from None
    except UnicodeDecodeError as e:  # in a string it uses; bytes it skips are not read
        raise BadEvent(f"data is not UTF-8: {e}") from None


def timestamp(text: str) -> float:
    """A timestamp outside a body (X-Server-Time) as epoch seconds."""
    try:
        return instant(msgspec.convert(text, Timestamp), None)
    except msgspec.ValidationError as e:
        raise BadEvent(f"timestamp {text!r:.60}: {e}") from None


# -- events -----------------------------------------------------------------------

EVENT_DATA: dict[str, type] = {"device.status": DeviceStatus, "alert.raised": Alert,
                               "alert.updated": Alert, "alert.cleared": Alert, "reset": Reset}


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
    type_ = EVENT_DATA.get(event_type)
    if type_ is None:
        raise BadEvent(f"unknown event type {event_type!r:.40}")
    body = decode(data, type_)
    if type_ is Reset:
        return Event(number, event_type, None)
    payload = body.to_domain(now)
    if type_ is Alert and (event_type == "alert.cleared") != (payload.state is AlertState.CLOSED):
        raise BadEvent(f"{event_type} with state {payload.state.value}")
    return Event(number, event_type, payload)
