"""A wearer's record: GET /wearers/{id}, audited; GET /sim/audit, who saw whom."""

from fastapi import APIRouter

from console.protocol import schema
from console.protocol.schema import API
from console.simulator.backend import Backend, problem
from console.simulator.http import Authed, answer, ok, returns


def router(backend: Backend) -> APIRouter:
    r = APIRouter()

    @r.get(f"{API}/wearers/{{wearer_id}}", responses=returns(schema.WearerRecord, 404, 422),
           description="One wearer's record: personal data beyond the board (language, "
                       "phone, order conditions, suspensions, open and past alerts). Each "
                       "answer is audited as viewed by the signed-in operator.")
    async def wearer(wearer_id: str, op: Authed):
        record = backend.view_wearer(wearer_id, op)
        if record is None:
            return answer(problem(404, "No such wearer", f"no wearer {wearer_id[:100]}"))
        return ok(record)

    @r.get("/sim/audit", responses=returns(schema.Viewed, many=True),
           description="Simulator only: every view of a wearer's record, oldest first.")
    async def audit(_: Authed):
        return ok(backend.viewed)

    return r
