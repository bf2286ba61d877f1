"""Trails behind the legal-purpose gate (docs/protocol.md, "Trails"): POST
/trail-requests, a supervisor's POST /trail-requests/{id}/decision, GET of one's
requests, GET /trail-requests/{id}/trail, and GET /wearers/{id}/trail-access, the
access log a data-protection officer reads.

The backend is the safeguard: it checks the purpose, the reference, the window,
the grant and who asks, whatever the console did. Every request, grant, decision,
fetch and refused fetch goes into the backend's hash-chained audit trail, durably,
before the answer; the access log is read back from that trail, so there is one
record, not two. Requests are kept in the state file; points are never stored
(whereabouts.py makes them on request).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from console.domain import EARLIEST, DeviceKind
from console.domain import trails as domain
from console.domain.access import Identity, Permission, roles_of
from console.domain.trails import (
    GRANT_LIFETIME,
    AccessEvent,
    Purpose,
    ReferenceKind,
    RequestState,
)
from console.protocol import schema
from console.protocol import trails as wire
from console.protocol.schema import API, encode
from console.simulator import whereabouts
from console.simulator.backend import Answer, Backend, fingerprint_of, problem
from console.simulator.http import (
    IdempotencyKey,
    allowed,
    answer,
    body_of,
    known_query,
    ok,
    returns,
    takes,
)

TABLE = """
CREATE TABLE IF NOT EXISTS trail_requests (id TEXT PRIMARY KEY, operator_id TEXT NOT NULL,
                                           body BLOB NOT NULL);
"""
# The audit trail's event for each access event: "trail requested", "trail fetched"...
AUDITED = {f"trail {e.value}": e for e in AccessEvent}
NO_LOCATIONS = "this wearer's device records no locations"
NOT_YOURS = "only the operator who asked for a trail may fetch it"

Asker = Annotated[schema.Operator, allowed(Permission.SEE_TRAIL)]
Approver = Annotated[schema.Operator, allowed(Permission.APPROVE_TRAIL)]
Auditor = Annotated[schema.Operator, allowed(Permission.SEE_AUDIT)]
Moment = Annotated[datetime | None, Query(description="ISO 8601 with a zone")]


def moment(value: datetime | None, name: str) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(422, f"{name} has no zone: ISO 8601 with a zone, please")
    return value.timestamp()


def approves(op: schema.Operator) -> bool:
    return Identity(op.name, roles_of(op.roles)).may(Permission.APPROVE_TRAIL)


def as_of(request: domain.TrailRequest, now: float) -> domain.TrailRequest:
    """The request as it stands at `now`: a grant past its lifetime has expired."""
    if request.state is RequestState.GRANTED and request.expires_at is not None \
            and now > request.expires_at:
        return replace(request, state=RequestState.EXPIRED)
    return request


class TrailDesk:
    """The trail requests a backend holds, by id, each with its requester's operator id."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.requests: dict[str, tuple[str, domain.TrailRequest]] = {}
        if backend.db is not None:
            backend.db.executescript(TABLE)
            for request_id, operator_id, body in backend.db.execute(
                    "SELECT id, operator_id, body FROM trail_requests"):
                self.requests[request_id] = (operator_id, schema.decode(
                    body, wire.TrailRequest).to_domain())

    # -- asking and deciding ------------------------------------------------------

    def ask(self, new: wire.NewTrailRequest, op: schema.Operator, key: str) -> Answer:
        """A request, once per idempotency key: granted at once for a window an
        operator may open, else pending for a supervisor. 404 for an unknown wearer;
        422 for what the rules refuse; 409 for an id another request has."""
        backend = self.backend
        scoped, fingerprint = (op.id, key), fingerprint_of(b"trail", encode(new))
        if (seen := backend._seen(scoped, fingerprint)) is not None:
            return seen
        backend.tick()
        now, fleet = backend.fleet.now, backend.fleet
        index = fleet.index_of_wearer(new.wearer_id)
        if index is None:
            return problem(404, "No such wearer", f"no wearer {new.wearer_id[:100]}")
        if new.id in self.requests:
            owner, held = self.requests[new.id]
            if owner == op.id and wire.NewTrailRequest.from_domain(held) == new:
                return self._answer(held)  # the same request again, under another key
            return problem(409, "Request id in use", "another trail request has this id")
        try:
            request = new.to_domain()
            reason = request.problem(now) or self._reference_problem(request) or (
                NO_LOCATIONS if fleet.devices[index].kind is not DeviceKind.GPS else None)
        except schema.BadEvent as e:
            reason = str(e)
        if reason is not None:
            refused = problem(422, "Refused by the rules", f"the trail request: {reason}")
            backend._remember(scoped, fingerprint, refused)
            return refused
        request = replace(request, requested_by=op.name, requested_at=now)
        events = [AccessEvent.REQUESTED]
        if not domain.needs_approval(request.start, request.end):
            request = replace(request, state=RequestState.GRANTED, expires_at=now + GRANT_LIFETIME)
            events.append(AccessEvent.GRANTED)
        result = self._answer(request)
        backend._idempotency[scoped] = (fingerprint, result)
        self._keep(op.id, request, [backend._key_sql(scoped, fingerprint, result), *(
            s for e in events for s in self._audit(e, op, request, request.start, request.end, ""))])
        return result

    def _reference_problem(self, r: domain.TrailRequest) -> str | None:
        """Why the reference does not name one of this wearer's alerts or case entries."""
        if r.reference_kind is ReferenceKind.ALERT:
            alert = self.backend.fleet.alerts.get(r.reference)
            if alert is None or alert.wearer_id != r.wearer_id:
                return f"alert {r.reference[:100]} is not one of this wearer's"
        elif r.reference_kind is ReferenceKind.CASE_ENTRY:
            if all(e.id != r.reference for e in self.backend.cases.get(r.wearer_id, [])):
                return f"case entry {r.reference[:100]} is not on this wearer's case"
        return None

    def decide(self, request_id: str, decision: wire.Decision, op: schema.Operator,
               key: str) -> Answer:
        """A supervisor's approval or refusal of a pending request, once per key: 403
        for their own request (separation of duties), 409 for one not pending."""
        backend = self.backend
        scoped = (op.id, key)
        fingerprint = fingerprint_of(b"trail decision", request_id.encode(), encode(decision))
        if (seen := backend._seen(scoped, fingerprint)) is not None:
            return seen
        backend.tick()
        now = backend.fleet.now
        if request_id not in self.requests:
            return problem(404, "No such trail request", f"no trail request {request_id[:100]}")
        owner, request = self.requests[request_id]
        request = as_of(request, now)
        refused = None
        if owner == op.id:
            refused = problem(403, "Not allowed", "separation of duties: a supervisor may not "
                                                  "decide their own trail request")
        elif request.state is not RequestState.PENDING:
            refused = problem(409, "Already decided",
                              f"the request is {request.state.value}, not pending")
        if refused is not None:
            backend._remember(scoped, fingerprint, refused)
            return refused
        request = replace(request, decided_by=op.name, decided_at=now, decision_note=decision.note,
                          state=RequestState.GRANTED if decision.approve else RequestState.REFUSED,
                          expires_at=now + GRANT_LIFETIME if decision.approve else None)
        result = self._answer(request)
        backend._idempotency[scoped] = (fingerprint, result)
        event = AccessEvent.APPROVED if decision.approve else AccessEvent.REFUSED
        self._keep(owner, request, [backend._key_sql(scoped, fingerprint, result),
                                    *self._audit(event, op, request, request.start, request.end,
                                                 decision.note)])
        return result

    # -- reading ------------------------------------------------------------------

    def visible(self, op: schema.Operator, state: RequestState | None,
                wearer_id: str | None) -> list[domain.TrailRequest]:
        """The operator's own requests, and for an approver every pending one; newest first."""
        now = self.backend.sim_now()
        shown = [as_of(r, now) for owner, r in self.requests.values()
                 if owner == op.id or (r.state is RequestState.PENDING and approves(op))]
        return sorted((r for r in shown if (state is None or r.state is state)
                       and (wearer_id is None or r.wearer_id == wearer_id)),
                      key=lambda r: r.requested_at, reverse=True)

    def one(self, request_id: str, op: schema.Operator) -> domain.TrailRequest | None:
        """The request, if it is the operator's own or they approve; else None, so
        that nobody learns of another's request."""
        owner, request = self.requests.get(request_id, (None, None))
        if request is None or (owner != op.id and not approves(op)):
            return None
        return as_of(request, self.backend.sim_now())

    def fetch(self, request_id: str, op: schema.Operator, start: float | None,
              end: float | None) -> Answer | wire.TrailPoints:
        """The points of a window under a grant, to its requester only; each fetch,
        and each one refused, is audited."""
        backend = self.backend
        backend.tick()
        now = backend.fleet.now
        if request_id not in self.requests:
            return problem(404, "No such trail request", f"no trail request {request_id[:100]}")
        owner, request = self.requests[request_id]
        start = request.start if start is None else start
        end = request.end if end is None else end
        if owner != op.id:
            reason, status = NOT_YOURS, 403 if approves(op) else 404
        else:
            reason, status = request.refuses_fetch(start, end, now), 403
        if reason is not None:
            backend._together(self._audit(AccessEvent.DENIED, op, request, start, end, reason))
            if status == 404:  # not even told that the request exists
                return problem(404, "No such trail request", f"no trail request {request_id[:100]}")
            return problem(403, "Not allowed", reason)
        index = backend.fleet.index_of_wearer(request.wearer_id)
        t, lat, lon, accuracy, source = whereabouts.trail(backend.fleet, index, start, end)
        backend._together(self._audit(AccessEvent.FETCHED, op, request, start, end,
                                      f"{len(t)} points"))
        curfew = backend.fleet.wearers[index].curfew
        sim = backend.fleet.sims[index]
        return wire.TrailPoints(
            request.id, request.wearer_id, schema.wire_time(start), schema.wire_time(end),
            t, lat, lon, accuracy, source, [sim.home_lat, sim.home_lon],
            None if curfew is None else str(curfew),
            [wire.Zone(z.name, z.exclusion, z.lat, z.lon, z.radius_m)
             for z in whereabouts.zones(backend.fleet, index)])

    def access_log(self, wearer_id: str, since: float, until: float) -> wire.AccessLog:
        """Every trail access event of the wearer in [since, until], oldest first,
        from the audit trail."""
        entries = []
        for entry in self.backend.trail:
            f = entry.fields
            if f["event"] not in AUDITED or f["subject"] != wearer_id or not since <= f["at"] <= until:
                continue
            d = json.loads(f["detail"])
            entries.append(domain.AccessEntry(
                f["at"], AUDITED[f["event"]], f["operator"], tuple(d["roles"]), d["request_id"],
                Purpose(d["purpose"]), ReferenceKind(d["reference_kind"]), d["reference"],
                d["justification"],
                d["start"], d["end"], d["detail"]))
        return wire.AccessLog.from_domain(domain.AccessLog(wearer_id, since, until, tuple(entries)))

    # -- keeping ------------------------------------------------------------------

    def _answer(self, request: domain.TrailRequest) -> Answer:
        return Answer(200, encode(wire.TrailRequest.from_domain(
            as_of(request, self.backend.fleet.now))))

    def _keep(self, owner: str, request: domain.TrailRequest, statements: list) -> None:
        """Hold the request, and write it with `statements` (its key's answer, its audit
        entries) in one transaction."""
        self.requests[request.id] = (owner, request)
        self.backend._together([("REPLACE INTO trail_requests VALUES (?, ?, ?)", (
            request.id, owner, encode(wire.TrailRequest.from_domain(request)))), *statements])

    def _audit(self, event: AccessEvent, op: schema.Operator, r: domain.TrailRequest,
               start: float, end: float, detail: str) -> list[tuple[str, tuple]]:
        """An access event in the backend's audit trail, its subject the wearer, its
        detail what the access log shows; the SQL for the transaction that records it."""
        return self.backend._audit(f"trail {event.value}", op, r.wearer_id, json.dumps({
            "roles": list(op.roles), "request_id": r.id, "purpose": r.purpose.value,
            "reference_kind": r.reference_kind.value, "reference": r.reference,
            "justification": r.justification, "start": start, "end": end, "detail": detail}))


def router(backend: Backend) -> APIRouter:
    r = APIRouter()
    desk = TrailDesk(backend)

    def no_such(request_id: str):
        return answer(problem(404, "No such trail request", f"no trail request {request_id[:100]}"))

    @r.post(f"{API}/trail-requests", responses=returns(wire.TrailRequest, 400, 404, 409, 422),
            openapi_extra=takes(wire.NewTrailRequest),
            description="Ask to see a wearer's trail for a purpose, with a reference, a "
                        "justification and a window: up to 7 days granted at once (for 24 "
                        "hours), longer pending until a supervisor decides; at most 31 days. "
                        "Audited.")
    async def ask(op: Asker, idempotency_key: IdempotencyKey,
                  body: Annotated[wire.NewTrailRequest, body_of(wire.NewTrailRequest)]):
        return answer(desk.ask(body, op, idempotency_key))

    @r.get(f"{API}/trail-requests", responses=returns(wire.TrailRequest, 422, many=True),
           description="The signed-in operator's trail requests and, for a supervisor, "
                       "every pending one; newest first.")
    async def requests(op: Asker, _: Annotated[None, known_query("state", "wearer_id")],
                       state: RequestState | None = None,
                       wearer_id: Annotated[str | None, Query(max_length=200)] = None):
        return ok([wire.TrailRequest.from_domain(x) for x in desk.visible(op, state, wearer_id)])

    @r.get(f"{API}/trail-requests/{{request_id}}", responses=returns(wire.TrailRequest, 404, 422),
           description="One trail request: one's own, or any for a supervisor.")
    async def one(request_id: str, op: Asker):
        found = desk.one(request_id, op)
        return no_such(request_id) if found is None else ok(wire.TrailRequest.from_domain(found))

    @r.post(f"{API}/trail-requests/{{request_id}}/decision",
            responses=returns(wire.TrailRequest, 400, 404, 409, 422),
            openapi_extra=takes(wire.Decision),
            description="A supervisor approves (granted for 24 hours) or refuses a pending "
                        "request, with a note; not their own. Audited.")
    async def decide(request_id: str, op: Approver, idempotency_key: IdempotencyKey,
                     body: Annotated[wire.Decision, body_of(wire.Decision)]):
        return answer(desk.decide(request_id, body, op, idempotency_key))

    @r.get(f"{API}/trail-requests/{{request_id}}/trail",
           responses=returns(wire.TrailPoints, 404, 422),
           description="The points of a granted window (by default the whole of it), "
                       "columnar, to the requester only; 403 without a live grant or "
                       "outside its window. Each fetch and each refusal is audited.")
    async def trail(request_id: str, op: Asker, _: Annotated[None, known_query("start", "end")],
                    start: Moment = None, end: Moment = None):
        got = desk.fetch(request_id, op, moment(start, "start"), moment(end, "end"))
        return answer(got) if isinstance(got, Answer) else ok(got)

    @r.get(f"{API}/wearers/{{wearer_id}}/trail-access",
           responses=returns(wire.AccessLog, 404, 422),
           description="Every access to the wearer's trail in [since, until] (by default "
                       "all until now), oldest first: who, in which roles, when, what, "
                       "for which purpose and reference, which window. An empty `entries` "
                       "states that there was none.")
    async def access(wearer_id: str, _: Auditor, __: Annotated[None, known_query("since", "until")],
                     since: Moment = None, until: Moment = None):
        if backend.fleet.index_of_wearer(wearer_id) is None:
            return answer(problem(404, "No such wearer", f"no wearer {wearer_id[:100]}"))
        since_, until_ = moment(since, "since"), moment(until, "until")
        if since_ is not None and until_ is not None and until_ < since_:
            # An empty log here would read as proof that nobody looked.
            return answer(problem(422, "Invalid request", "the period ends before it starts"))
        return ok(desk.access_log(wearer_id, EARLIEST if since_ is None else since_,
                                  backend.sim_now() if until_ is None else until_))

    return r
