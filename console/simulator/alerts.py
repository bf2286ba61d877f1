"""Alerts: GET /alerts/{id}; the operators' transitions, POST /alerts/{id}/acknowledge,
claim, start, close, shelve and unshelve (the rules are console/domain/alerts.py); and
the simulator's own GET /sim/ground-truth/{id}."""

from typing import Annotated

import msgspec
from fastapi import APIRouter

from console import domain
from console.domain.access import Permission
from console.protocol import schema
from console.protocol.schema import API
from console.simulator.backend import Backend, problem
from console.simulator.http import (
    ActedAt,
    IdempotencyKey,
    Viewer,
    Worker,
    allowed,
    answer,
    body_of,
    ok,
    returns,
    takes,
)


def transition(verb: bytes, alert_id: str, body: msgspec.Struct | None = None) -> bytes:
    """What identifies a transition for its idempotency key."""
    return b"\0".join((verb, alert_id.encode(), b"" if body is None else schema.encode(body)))


Evaluator = Annotated[schema.Operator, allowed(Permission.SEE_GROUND_TRUTH)]


def router(backend: Backend) -> APIRouter:
    r = APIRouter()

    def no_such(alert_id: str):
        return answer(problem(404, "No such alert", f"no alert has the id {alert_id}"))

    @r.get(f"{API}/alerts/{{alert_id}}", responses=returns(schema.Alert, 404, 422))
    async def get_alert(alert_id: str, _: Viewer):
        alert = backend.fleet.alerts.get(alert_id)
        return no_such(alert_id) if alert is None else ok(schema.Alert.from_domain(alert))

    moves = returns(schema.Alert, 400, 404, 409, 422)

    @r.post(f"{API}/alerts/{{alert_id}}/acknowledge", responses=moves,
            openapi_extra=takes(schema.Acknowledgement))
    async def acknowledge(alert_id: str, op: Worker, idempotency_key: IdempotencyKey,
                          acted: ActedAt,
                          body: Annotated[schema.Acknowledgement, body_of(schema.Acknowledgement)]):
        # The fingerprint acknowledgements had before the other transitions, so that
        # a key a backend kept from then still matches its retry.
        ack = f"ack\0{alert_id}\0{body.note}".encode()
        return answer(backend.handle(alert_id, ack, op, idempotency_key,
                                     lambda a, now: domain.acknowledge(a, now, op.name, body.note), acted))

    @r.post(f"{API}/alerts/{{alert_id}}/claim", responses=moves, openapi_extra=takes(schema.Claim),
            description="Hold the alert: every console sees who. Claiming what another "
                        "operator holds needs take_over; claiming one's own again changes nothing.")
    async def claim(alert_id: str, op: Worker, idempotency_key: IdempotencyKey, acted: ActedAt,
                    body: Annotated[schema.Claim, body_of(schema.Claim)]):
        return answer(backend.handle(alert_id, transition(b"claim", alert_id, body), op,
                                     idempotency_key,
                                     lambda a, now: domain.claim(a, now, op.name, body.take_over), acted))

    @r.post(f"{API}/alerts/{{alert_id}}/start", responses=moves,
            description="The holder starts work on it.")
    async def start(alert_id: str, op: Worker, idempotency_key: IdempotencyKey, acted: ActedAt):
        return answer(backend.handle(alert_id, transition(b"start", alert_id), op,
                                     idempotency_key,
                                     lambda a, now: domain.start_work(a, now, op.name), acted))

    @r.post(f"{API}/alerts/{{alert_id}}/close", responses=moves,
            openapi_extra=takes(schema.Closing),
            description="The holder closes it, with an outcome and a note.")
    async def close(alert_id: str, op: Worker, idempotency_key: IdempotencyKey, acted: ActedAt,
                    body: Annotated[schema.Closing, body_of(schema.Closing)]):
        return answer(backend.handle(
            alert_id, transition(b"close", alert_id, body), op, idempotency_key,
            lambda a, now: domain.close(a, now, op.name, body.outcome, body.note), acted))

    @r.post(f"{API}/alerts/{{alert_id}}/shelve", responses=moves,
            openapi_extra=takes(schema.Shelving),
            description="Quiet until `until` (at most 8 hours), with a reason. Every "
                        "event is still recorded; it lifts itself when it expires.")
    async def shelve(alert_id: str, op: Worker, idempotency_key: IdempotencyKey, acted: ActedAt,
                     body: Annotated[schema.Shelving, body_of(schema.Shelving)]):
        until = body.until.timestamp()
        return answer(backend.handle(
            alert_id, transition(b"shelve", alert_id, body), op, idempotency_key,
            lambda a, now: domain.shelve(a, now, op.name, body.reason, until), acted))

    @r.post(f"{API}/alerts/{{alert_id}}/unshelve", responses=moves,
            description="Lift a shelving before it expires.")
    async def unshelve(alert_id: str, op: Worker, idempotency_key: IdempotencyKey, acted: ActedAt):
        return answer(backend.handle(alert_id, transition(b"unshelve", alert_id), op,
                                     idempotency_key,
                                     lambda a, now: domain.unshelve(a, now, op.name), acted))

    @r.get("/sim/ground-truth/{alert_id}", responses=returns(schema.GroundTruth, 404, 422),
           description="Simulator only: whether a breach was real non-compliance or an "
                       "equipment fault.")
    async def ground_truth(alert_id: str, _: Evaluator):
        cause = backend.fleet.truth.get(alert_id)
        return no_such(alert_id) if cause is None else ok(schema.GroundTruth(alert_id, cause))

    return r
