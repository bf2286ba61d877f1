"""What every resource of the simulated backend needs: answers as responses, the
signed-in operator, request bodies decoded by the wire schema, and how each of
these is described in /openapi.json.

FastAPI routes requests and declares headers and path parameters; the bodies and
their documentation come from console/protocol/schema.py, so that no field is
described twice.
"""

from datetime import datetime
from typing import Annotated, TypeVar

import msgspec
import msgspec.inspect
from fastapi import Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from console.domain.access import Identity, Permission, roles_of
from console.protocol import schema
from console.protocol.schema import BadEvent
from console.simulator.accounts import NOT_ALLOWED
from console.simulator.backend import Answer

PROBLEM = "application/problem+json"
# The largest valid request, a 2,000-character note escaped as surrogate pairs, is
# under 25 KB; nothing needs more, and nobody may make the backend hold more.
MAX_BODY = 64 << 10
# Inline in every operation's problem answers, as they were documented before.
PROBLEM_SCHEMA = schema.components()["Problem"]
T = TypeVar("T")

MEANINGS = {
    400: "The body is not JSON sent as application/json.",
    401: "No valid token: none, unknown, expired or signed out (for sign-in: wrong "
         "username or password; for refreshing: no live refresh token).",
    403: "The signed-in person's roles do not allow this (x-permission names what it needs).",
    404: "No such alert, wearer or trail request (or not one's own to see).",
    409: "The alert is already acknowledged or closed; the trail request is decided "
         "already, or its id is another request's.",
    413: f"The body is larger than {MAX_BODY // 1024} KiB.",
    422: "Not a request the operation accepts: a JSON field, header or parameter is wrong.",
    429: "Too many wrong passwords for this username: try again after Retry-After seconds.",
}


def answer(a: Answer, headers: dict | None = None) -> Response:
    media = "application/json" if a.status < 400 else PROBLEM
    return Response(a.body, status_code=a.status, headers=headers, media_type=media)


def ok(body: msgspec.Struct | list[msgspec.Struct]) -> Response:
    return Response(schema.encode(body), media_type="application/json")


def ref(type_: type) -> dict:
    return {"$ref": f"#/components/schemas/{type_.__name__}"}


def problems(*codes: int) -> dict:
    """The problem answers an operation documents: its own codes, and the Gate's."""
    return {code: {"description": MEANINGS[code], "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}
            for code in sorted({401, 413, *codes})}


def returns(type_: type, *codes: int, many: bool = False) -> dict:
    """`responses=` of an operation that answers a `type_` (a list of them, `many`)
    or a problem."""
    body = {"type": "array", "items": ref(type_)} if many else ref(type_)
    return {200: {"content": {"application/json": {"schema": body}}}, **problems(*codes)}


def takes(type_: type) -> dict:
    """`openapi_extra=` of an operation whose body is a `type_`."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": ref(type_)}}}}


def body_of(type_: type[T]):
    """A dependency: the request's body as a `type_`, or a 422 saying why not. The
    Gate has already made sure that it is JSON and not too large."""
    async def decoded(request: Request) -> T:
        body = await request.body()
        if not body:  # the Gate lets a POST without a body through; this one needs one
            raise HTTPException(400, "Body is not JSON: this request needs a JSON document")
        try:
            return schema.decode(body, type_)
        except BadEvent as e:
            raise RequestValidationError([{"loc": ("body",), "msg": with_allowed(type_, str(e))}]) \
                from None
    return Depends(decoded)


def with_allowed(type_: type, reason: str) -> str:
    """msgspec's refusal of a value not in a field's enum, with the values allowed:
    "Invalid enum value 'x' - at `$.purpose`" names neither."""
    where = reason.rpartition(" - at `$.")[2].rstrip("`")
    if not reason.startswith("Invalid enum value") or not where.isidentifier():
        return reason
    field = next((f for f in msgspec.inspect.type_info(type_).fields if f.encode_name == where),
                 None)
    kind = getattr(field.type, "type", field.type) if field else None  # under its Meta
    if not isinstance(kind, msgspec.inspect.EnumType):
        return reason
    return f"{reason} (allowed: {', '.join(str(m.value) for m in kind.cls)})"


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def session(request: Request, _: Bearer) -> str:
    """A dependency: the id of the session whose token the Gate checked. The bearer
    dependency only declares the scheme in /openapi.json."""
    return request.state.session


def allowed(permission: Permission):
    """A dependency: the signed-in operator, if their roles allow `permission`
    (console/domain/access.py), else a 403 saying why not. Every operation but
    signing in names one; /openapi.json shows it as x-permission."""
    async def operator(request: Request, _: Bearer) -> schema.Operator:  # on the loop, as the backend is
        # The Gate checked the token before the body was read.
        op: schema.Operator = request.state.operator
        why = Identity(op.name, roles_of(op.roles)).why_not(permission)
        if why:
            request.app.state.backend.access(NOT_ALLOWED, op.name, request.url.path, permission.name)
            raise HTTPException(403, why)
        return op
    operator.permission = permission
    return Depends(operator)


def known_query(*names: str):
    """A dependency: 422 for a query parameter the operation does not take, or one
    given twice. A misspelt one (`untill=`) would otherwise be ignored, and a repeated
    one all but once: the answer would be for something not asked."""
    def check(request: Request) -> None:
        given = [name for name, _ in request.query_params.multi_items()]
        wrong = next((n for n in given if n not in names or given.count(n) > 1), None)
        if wrong is not None:
            why = "given more than once" if wrong in names else \
                f"not a parameter of this operation (it takes {', '.join(names)})"
            raise RequestValidationError([{"loc": ("query", wrong[:40]), "msg": why}])
    return Depends(check)


def permission_of(route: APIRoute) -> Permission | None:
    """The permission a route's operation needs, as `allowed` declared it."""
    return next((getattr(d.call, "permission", None) for d in route.dependant.dependencies
                 if hasattr(d.call, "permission")), None)


# Who may use the operations most resources have.
Viewer = Annotated[schema.Operator, allowed(Permission.SEE_PICTURE)]
Worker = Annotated[schema.Operator, allowed(Permission.WORK_ALERTS)]
# An action's Idempotency-Key header: a retry with the same key is the same action.
IdempotencyKey = Annotated[str, Header(min_length=8, max_length=200)]


def acted_at(acted_at: Annotated[datetime, Header(  # optional, but never null: no `| None`
        description="when the operator acted, if before this request (an action queued "
                    "offline): ISO 8601 with a zone")] = None) -> float | None:
    """The Acted-At header as epoch seconds; a 422 for one without a zone."""
    if acted_at is None:
        return None
    if acted_at.tzinfo is None:
        raise HTTPException(422, "Acted-At has no zone: ISO 8601 with a zone, please")
    return acted_at.timestamp()


ActedAt = Annotated[float | None, Depends(acted_at)]
