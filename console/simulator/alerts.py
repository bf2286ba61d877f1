"""Alerts: GET /alerts/{id}, POST /alerts/{id}/acknowledge, and the simulator's own
GET /sim/ground-truth/{id}."""

from typing import Annotated

from fastapi import APIRouter, Header

from console.protocol import schema
from console.protocol.schema import API
from console.simulator.backend import Backend, problem
from console.simulator.http import Authed, answer, body_of, ok, returns, takes


def router(backend: Backend) -> APIRouter:
    r = APIRouter()

    def no_such(alert_id: str):
        return answer(problem(404, "No such alert", f"no alert has the id {alert_id}"))

    @r.get(f"{API}/alerts/{{alert_id}}", responses=returns(schema.Alert, 404, 422))
    async def get_alert(alert_id: str, _: Authed):
        alert = backend.fleet.alerts.get(alert_id)
        return no_such(alert_id) if alert is None else ok(schema.Alert.from_domain(alert))

    @r.post(f"{API}/alerts/{{alert_id}}/acknowledge",
            responses=returns(schema.Alert, 400, 404, 409, 422),
            openapi_extra=takes(schema.Acknowledgement))
    async def acknowledge(
        alert_id: str,
        op: Authed,
        idempotency_key: Annotated[str, Header(min_length=8, max_length=200)],
        body: Annotated[schema.Acknowledgement, body_of(schema.Acknowledgement)],
    ):
        return answer(backend.acknowledge(alert_id, body.note, op, idempotency_key))

    @r.get("/sim/ground-truth/{alert_id}", responses=returns(schema.GroundTruth, 404, 422),
           description="Simulator only: whether a breach was real non-compliance or an "
                       "equipment fault.")
    async def ground_truth(alert_id: str, _: Authed):
        cause = backend.fleet.truth.get(alert_id)
        return no_such(alert_id) if cause is None else ok(schema.GroundTruth(alert_id, cause))

    return r
