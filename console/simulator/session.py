"""Sessions: POST /session (sign in), POST /session/refresh, DELETE /session (sign out)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from console.protocol import schema
from console.protocol.schema import API
from console.simulator import http
from console.simulator.accounts import Locked
from console.simulator.backend import Backend, problem
from console.simulator.http import answer, body_of, ok, problems, returns, takes

REFUSED = problem(401, "Wrong username or password", "sign-in refused")


def router(backend: Backend) -> APIRouter:
    r = APIRouter()

    @r.post(f"{API}/session", responses=returns(schema.Session, 400, 422, 429),
            openapi_extra=takes(schema.SignIn),
            description="Sign in. The same 401 for an unknown username as for a wrong "
                        "password; after repeated failures, 429 for a while, known or not.")
    async def session(body: Annotated[schema.SignIn, body_of(schema.SignIn)]):
        out = await backend.accounts.sign_in(body.username, body.password)
        if out is None:
            return answer(REFUSED)
        if isinstance(out, Locked):
            wait = max(1, round(out.retry_after))
            return answer(problem(429, "Too many failed sign-ins",
                                  f"try again in {wait} s"), {"Retry-After": str(wait)})
        return ok(out)

    @r.post(f"{API}/session/refresh", responses=returns(schema.Session, 400, 422),
            openapi_extra=takes(schema.Refresh),
            description="New tokens for the session, for its refresh token, which works once.")
    async def refresh(body: Annotated[schema.Refresh, body_of(schema.Refresh)]):
        out = backend.accounts.refresh(body.refresh_token)
        if out is None:
            return answer(problem(401, "Session expired or signed out", "sign in again"))
        return ok(out)

    @r.delete(f"{API}/session", status_code=204, responses=problems(),
              description="Sign out: the session's tokens stop working, and its event "
                          "stream ends.")
    async def sign_out(signed_in: Annotated[str, Depends(http.session)]):
        backend.accounts.sign_out(signed_in)
        return Response(status_code=204)

    return r
