"""HTTP surface of the simulated backend: the protocol of docs/protocol.md.

This module composes the application: the Gate in front of every request, the
problem answers, the resources (session.py, snapshot.py, alerts.py) and
/openapi.json, whose schemas are the wire types of console/protocol/schema.py.
"""


import asyncio
import contextlib

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from console.protocol import schema
from console.protocol.schema import API
from console.simulator import alerts, session, snapshot, trails, wearers
from console.simulator.accounts import Accounts
from console.simulator.backend import Backend, problem
from console.simulator.http import MAX_BODY, answer, permission_of, problems

TICK_SECONDS = 0.1
# The only requests a stranger may make.
OPEN = {("POST", f"{API}/session"), ("POST", f"{API}/session/refresh"), ("GET", "/openapi.json")}


def is_json(content_type: str | None, body: bytes) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return False
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:  # also for bytes that are not UTF-8
        return False
    return True


# The Gate's refusals, the same for every request.
SIGN_IN_FIRST = answer(problem(401, "Sign in first", "send the token from sign-in as "
                               "Authorization: Bearer"), {"WWW-Authenticate": "Bearer"})
TOKEN_REFUSED = answer(problem(401, "Token refused", "unknown, expired or signed out: refresh "
                               "the session or sign in again"),
                       {"WWW-Authenticate": 'Bearer error="invalid_token"'})
TOO_LARGE = answer(problem(413, "Request body too large", f"the limit is {MAX_BODY} bytes"))
NOT_JSON = answer(problem(400, "Body is not JSON",
                          "send a JSON document with Content-Type: application/json"))


class Gate:
    """What is checked before the app reads a request, in this order: the token,
    the body's size, and that a POST's body, if it has one, is JSON (starting work
    and unshelving have none; an operation that needs one refuses its absence with
    a 400 too). A stranger cannot make the backend read a body at all, nobody can
    make it hold more than MAX_BODY bytes, and the app sees only JSON or nothing,
    so its 422 means JSON it does not accept."""

    def __init__(self, app, accounts: Accounts):
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if (scope["method"], scope["path"]) not in OPEN:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            token = token if scheme.lower() == "bearer" else ""  # Basic and the like: none
            operator = self.accounts.operator(token) if token else None
            if operator is None:
                return await (TOKEN_REFUSED if token else SIGN_IN_FIRST)(scope, receive, send)
            scope.setdefault("state", {}).update(
                operator=operator, session=self.accounts.session_of(token))
        length = headers.get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > MAX_BODY:
            return await TOO_LARGE(scope, receive, send)
        body, more = b"", True
        while more:  # counted as it comes: a chunked body states no length
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                return await TOO_LARGE(scope, receive, send)
        if scope["method"] == "POST" and body and not is_json(headers.get("content-type"), body):
            return await NOT_JSON(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:  # later calls wait for the disconnect, as streams do
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def create_app(backend: Backend, heartbeat: float = 10.0) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async def run():
            while True:
                backend.tick()
                await asyncio.sleep(TICK_SECONDS)

        task = asyncio.create_task(run())
        yield
        task.cancel()

    # No /docs or /redoc: their pages load Swagger UI and ReDoc from a CDN, which a
    # closed network does not reach. /openapi.json is the machine-readable contract.
    app = FastAPI(title="EM monitoring backend (simulator)", version="1.0.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.add_middleware(Gate, accounts=backend.accounts)
    app.state.backend = backend  # a refusal (http.allowed) is audited

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException):
        title = "Not allowed" if exc.status_code == 403 else str(exc.detail)
        return answer(problem(exc.status_code, title, str(exc.detail)), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return answer(problem(422, "Invalid request", detail[:2000]))

    routers = [session.router(backend), snapshot.router(backend, heartbeat),
               alerts.router(backend), wearers.router(backend), trails.router(backend)]
    for router in routers:
        app.include_router(router)

    def openapi() -> dict:
        """FastAPI's paths, with the wire schema's types as the components they name."""
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            doc.setdefault("components", {}).setdefault("schemas", {}).update(schema.components())
            for route in (route for router in routers for route in router.routes):
                if isinstance(route, APIRoute) and (needs := permission_of(route)):
                    for method in route.methods:
                        operation = doc["paths"][route.path_format][method.lower()]
                        operation["x-permission"] = needs.name
                        operation["responses"]["403"] = problems(403)[403]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi
    return app
