"""Signing in: POST /session."""

from typing import Annotated

from fastapi import APIRouter

from console.protocol import schema
from console.protocol.schema import API
from console.simulator.backend import Backend, problem
from console.simulator.http import answer, body_of, ok, returns, takes


def router(backend: Backend) -> APIRouter:
    r = APIRouter()

    @r.post(f"{API}/session", responses=returns(schema.Session, 400, 422),
            openapi_extra=takes(schema.SignIn))
    async def session(body: Annotated[schema.SignIn, body_of(schema.SignIn)]):
        out = backend.sign_in(body.username, body.password)
        if out is None:
            return answer(problem(401, "Wrong username or password", "sign-in refused"))
        return ok(out)

    return r
