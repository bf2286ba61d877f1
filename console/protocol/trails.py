"""The wire types of trail access (docs/protocol.md, "Trails"): a request for a
purpose, a supervisor's decision, the points of a granted window (columnar), and a
wearer's access log. Each converts to and from console/domain/trails.py.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from console.domain import trails as domain
from console.domain.fleet import Curfew
from console.domain.trails import AccessEvent, Purpose, ReferenceKind, RequestState, Source
from console.protocol.schema import (
    BadEvent,
    Id,
    Name,
    Note,
    Reason,
    Timestamp,
    instant,
    wire_time,
)

Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]


class NewTrailRequest(Struct):
    """The body of POST /trail-requests: which wearer, why, and which window."""

    id: Annotated[Id, Meta(description="chosen by the console (a UUID): a retry is the same "
                                       "request, another request with this id is 409")]
    wearer_id: Id
    purpose: Annotated[Purpose, Meta(description="one of the purposes for which a trail may "
                                                 "be viewed (ICIBI §5.34-5.37)")]
    reference_kind: ReferenceKind
    reference: Annotated[Name, Meta(description="the alert's or case entry's id, or an "
                                                "external reference")]
    justification: Reason
    start: Timestamp
    end: Annotated[Timestamp, Meta(description="at most 31 days after start; more than 7 days "
                                               "waits for a supervisor's approval")]

    @classmethod
    def from_domain(cls, r: domain.TrailRequest) -> NewTrailRequest:
        return cls(r.id, r.wearer_id, r.purpose, r.reference_kind, r.reference, r.justification,
                   wire_time(r.start), wire_time(r.end))

    def to_domain(self) -> domain.TrailRequest:
        return domain.TrailRequest(self.id, self.wearer_id, self.purpose, self.reference_kind,
                                   self.reference, self.justification,
                                   instant(self.start, None, "start"), instant(self.end, None, "end"))


class TrailRequest(NewTrailRequest, kw_only=True):
    """A trail request as the backend holds it."""

    state: RequestState
    requested_by: Name
    requested_at: Timestamp
    decided_by: Name | None = None
    decided_at: Timestamp | None = None
    decision_note: Note = ""
    expires_at: Annotated[Timestamp | None, Meta(
        description="granted: its window may be fetched until then")] = None

    @classmethod
    def from_domain(cls, r: domain.TrailRequest) -> TrailRequest:
        opt = lambda ts: None if ts is None else wire_time(ts)  # noqa: E731
        return cls(id=r.id, wearer_id=r.wearer_id, purpose=r.purpose, reference_kind=r.reference_kind,
                   reference=r.reference, justification=r.justification, start=wire_time(r.start),
                   end=wire_time(r.end), state=r.state, requested_by=r.requested_by,
                   requested_at=wire_time(r.requested_at), decided_by=r.decided_by,
                   decided_at=opt(r.decided_at), decision_note=r.decision_note,
                   expires_at=opt(r.expires_at))

    def to_domain(self) -> domain.TrailRequest:
        opt = lambda ts, where: None if ts is None else instant(ts, None, where)  # noqa: E731
        return domain.TrailRequest(
            self.id, self.wearer_id, self.purpose, self.reference_kind, self.reference,
            self.justification, instant(self.start, None, "start"), instant(self.end, None, "end"),
            self.state, self.requested_by, instant(self.requested_at, None, "requested_at"),
            self.decided_by, opt(self.decided_at, "decided_at"), self.decision_note,
            opt(self.expires_at, "expires_at"))


class Decision(Struct):
    """The body of POST /trail-requests/{id}/decision: a supervisor's answer to a
    request that waits for one, with the reason recorded either way."""

    approve: bool
    note: Reason


class Zone(Struct):
    name: Name
    exclusion: Annotated[bool, Meta(description="false: an inclusion zone")]
    lat: Latitude
    lon: Longitude
    radius_m: Annotated[float, Meta(gt=0, le=100_000)]


# Columns are plain numbers, not constrained per item: a bad point costs only itself
# (the client skips and counts it), never the whole trail.
Column = Annotated[list[float], Meta(max_length=domain.MAX_POINTS)]


class TrailPoints(Struct):
    """GET /trail-requests/{id}/trail: the points of a granted window, columnar.
    Column k of each list is point k; `t` is epoch seconds. Gaps in the signal are
    gaps in `t`."""

    request_id: Id
    wearer_id: Id
    start: Timestamp
    end: Timestamp
    t: Column
    lat: Column
    lon: Column
    accuracy: Annotated[Column, Meta(description="metres")]
    source: Annotated[list[Source], Meta(max_length=domain.MAX_POINTS)]
    home: Annotated[list[float], Meta(min_length=2, max_length=2,
                                      description="the curfew address, [lat, lon]")] | None = None
    curfew: Annotated[str | None, Meta(description="as Wearer.curfew")] = None
    zones: Annotated[list[Zone], Meta(max_length=100)] = []

    @classmethod
    def from_domain(cls, trail: domain.Trail) -> TrailPoints:
        return cls(trail.request_id, trail.wearer_id, wire_time(trail.start), wire_time(trail.end),
                   list(trail.t), list(trail.lat), list(trail.lon), list(trail.accuracy),
                   list(trail.source), None if trail.home is None else list(trail.home),
                   None if trail.curfew is None else str(trail.curfew),
                   [Zone(z.name, z.exclusion, z.lat, z.lon, z.radius_m) for z in trail.zones])

    def to_domain(self) -> domain.Trail:
        """The usable points; the others are skipped and counted (Trail.skipped).
        Columns of different lengths are refused whole: no point can be trusted."""
        lengths = {len(c) for c in (self.t, self.lat, self.lon, self.accuracy, self.source)}
        if len(lengths) != 1:
            raise BadEvent(f"the trail's columns differ in length ({sorted(lengths)})")
        start, end = instant(self.start, None, "start"), instant(self.end, None, "end")
        (t, lat, lon, accuracy, source), skipped = domain.usable_points(
            self.t, self.lat, self.lon, self.accuracy, self.source, start, end)
        home = None
        if self.home is not None and -90 <= self.home[0] <= 90 and -180 <= self.home[1] <= 180:
            home = (self.home[0], self.home[1])
        try:
            curfew = Curfew.parse(self.curfew)
        except ValueError as e:
            raise BadEvent(f"the trail's curfew: {e}") from None
        return domain.Trail(self.request_id, self.wearer_id, start, end, t, lat, lon, accuracy,
                            source, home, curfew,
                            tuple(domain.Zone(z.name, z.exclusion, z.lat, z.lon, z.radius_m)
                                  for z in self.zones), skipped)


class AccessEntry(Struct):
    at: Timestamp
    event: AccessEvent
    operator: Name
    roles: Annotated[list[Name], Meta(max_length=100)]
    request_id: Id
    purpose: Purpose
    reference_kind: ReferenceKind
    reference: Name
    justification: Note
    start: Timestamp
    end: Timestamp
    detail: Note = ""

    @classmethod
    def from_domain(cls, e: domain.AccessEntry) -> AccessEntry:
        return cls(wire_time(e.at), e.event, e.operator, list(e.roles), e.request_id, e.purpose,
                   e.reference_kind, e.reference, e.justification, wire_time(e.start),
                   wire_time(e.end), e.detail)

    def to_domain(self) -> domain.AccessEntry:
        return domain.AccessEntry(instant(self.at, None, "at"), self.event, self.operator,
                                  tuple(self.roles), self.request_id, self.purpose,
                                  self.reference_kind, self.reference, self.justification,
                                  instant(self.start, None, "start"), instant(self.end, None, "end"),
                                  self.detail)


class AccessLog(Struct):
    """GET /wearers/{id}/trail-access: every grant and fetch of the wearer's trail in
    [since, until], oldest first; an empty `entries` states that there was none."""

    wearer_id: Id
    since: Timestamp
    until: Timestamp
    entries: Annotated[list[AccessEntry], Meta(max_length=100_000)]

    @classmethod
    def from_domain(cls, log: domain.AccessLog) -> AccessLog:
        return cls(log.wearer_id, wire_time(log.since), wire_time(log.until),
                   [AccessEntry.from_domain(e) for e in log.entries])

    def to_domain(self) -> domain.AccessLog:
        return domain.AccessLog(self.wearer_id, instant(self.since, None, "since"),
                                instant(self.until, None, "until"),
                                tuple(e.to_domain() for e in self.entries))


TYPES = [NewTrailRequest, TrailRequest, Decision, TrailPoints, AccessLog]
