"""A wearer's record: GET /wearers/{id}, audited; POST /wearers/{id}/case, an entry
on the wearer's breach case; POST /wearers/{id}/suspensions, monitoring suspended by
design; GET /sim/audit, who saw whom."""

from typing import Annotated

from fastapi import APIRouter

from console.domain.access import Permission as P
from console.protocol import schema
from console.protocol.schema import API
from console.simulator.backend import Backend, problem
from console.simulator.http import (
    ActedAt,
    IdempotencyKey,
    allowed,
    answer,
    body_of,
    ok,
    returns,
    takes,
)


def router(backend: Backend) -> APIRouter:
    r = APIRouter()

    @r.get(f"{API}/wearers/{{wearer_id}}", responses=returns(schema.WearerRecord, 404, 422),
           description="One wearer's record: personal data beyond the board (language, "
                       "phone, order conditions, suspensions, open and past alerts). Each "
                       "answer is audited as viewed by the signed-in operator.")
    async def wearer(wearer_id: str, op: Annotated[schema.Operator, allowed(P.SEE_WEARER)]):
        record = backend.view_wearer(wearer_id, op)
        if record is None:
            return answer(problem(404, "No such wearer", f"no wearer {wearer_id[:100]}"))
        return ok(record)

    @r.post(f"{API}/wearers/{{wearer_id}}/case", responses=returns(schema.CaseEntry, 400, 404, 422),
            openapi_extra=takes(schema.NewCaseEntry),
            description="Record an entry on the wearer's breach case: what each kind needs "
                        "(breaches named; a decision maker and reasons for a decision or a "
                        "referral; a sanction for a decision only) is refused with 422.")
    async def case_entry(wearer_id: str, op: Annotated[schema.Operator, allowed(P.RECORD_CASE)],
                         idempotency_key: IdempotencyKey,
                         acted: ActedAt,
                         body: Annotated[schema.NewCaseEntry, body_of(schema.NewCaseEntry)]):
        return answer(backend.record_case_entry(wearer_id, body, op, idempotency_key, acted))

    @r.post(f"{API}/wearers/{{wearer_id}}/suspensions",
            responses=returns(schema.Suspension, 400, 404, 422), openapi_extra=takes(schema.Suspension),
            description="Suspend the wearer's monitoring by design (hospital, custody, an "
                        "approved absence, a device not yet fitted): alerts raised while it "
                        "holds are recorded and marked `suppressed`, and never notify.")
    async def suspend(wearer_id: str, op: Annotated[schema.Operator, allowed(P.SUSPEND)],
                      idempotency_key: IdempotencyKey,
                      body: Annotated[schema.Suspension, body_of(schema.Suspension)]):
        return answer(backend.suspend(wearer_id, body, op, idempotency_key))

    @r.get("/sim/audit", responses=returns(schema.Viewed, many=True),
           description="Simulator only: every view of a wearer's record, oldest first.")
    async def audit(_: Annotated[schema.Operator, allowed(P.SEE_AUDIT)]):
        return ok(backend.viewed)

    return r
