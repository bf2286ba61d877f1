"""HTTP surface of the simulated backend: the protocol of docs/protocol.md.

Response bodies are encoded once with orjson; the pydantic models only describe
them for /openapi.json, so a 100,000-wearer snapshot is not validated twice.
"""


import asyncio
import contextlib
from typing import Annotated, Literal

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from console.domain import iso
from console.protocol.sse import encode_frame
from console.protocol.wire import API, encode_alert
from console.simulator.backend import Answer, Backend, problem

PROBLEM = "application/problem+json"
TICK_SECONDS = 0.1
RESET_REASON = b'{"reason":"resume point not in the replay buffer"}'
MAX_CHUNK = 5_000  # frames per write, so one slow client cannot hold a huge buffer
# The largest valid request, a 2,000-character note escaped as surrogate pairs, is
# under 25 KB; nothing needs more, and nobody may make the backend hold more.
MAX_BODY = 64 << 10
OPEN_PATHS = {f"{API}/session", "/openapi.json"}  # the only ones a stranger may use


class SessionIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=200)


class Operator(BaseModel):
    id: str
    name: str
    roles: list[str]


class SessionOut(BaseModel):
    token: str
    operator: Operator


class Status(BaseModel):
    device_id: str
    ts: str = Field(description="last contact, ISO 8601 with zone")
    battery: float = Field(ge=0, le=100)
    charging: bool
    strap: Literal["ok", "open"] | None
    gps_fix: bool | None
    at_home: bool | None = Field(description="present at the curfew address; null if unknown")


class WearerOut(BaseModel):
    id: str
    ref: str
    curfew: str | None = Field(description="local HH:MM-HH:MM, Europe/London")


class DeviceOut(BaseModel):
    id: str
    wearer_id: str
    kind: Literal["gps", "rf", "nfd", "wristband"]
    status: Status | None


class HistoryItem(BaseModel):
    state: Literal["unacknowledged", "acknowledged", "closed"]
    at: str
    by: str | None
    note: str | None


class AlertOut(BaseModel):
    id: str
    wearer_id: str
    device_id: str
    type: str
    raised_at: str
    state: Literal["unacknowledged", "acknowledged", "closed"]
    active: bool
    history: list[HistoryItem]


class Snapshot(BaseModel):
    stream_id: str
    server_time: str
    clock_rate: float = Field(description="server seconds per real second; 1 for a real backend")
    last_event_id: int
    wearers: list[WearerOut]
    devices: list[DeviceOut]
    alerts: list[AlertOut]


class AckIn(BaseModel):
    note: str = Field(max_length=2000)


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str


MEANINGS = {
    400: "The body is not JSON sent as application/json.",
    401: "No valid token (for sign-in: wrong username or password).",
    404: "No such alert.",
    409: "The alert is already acknowledged or closed.",
    413: f"The body is larger than {MAX_BODY // 1024} KiB.",
    422: "Not a request the operation accepts: a JSON field, header or parameter is wrong.",
}


def problems(*codes: int) -> dict:
    """The problem answers an operation documents: its own codes, and the Gate's.
    The schema is inline: a model would describe the body as application/json."""
    schema = Problem.model_json_schema()
    return {code: {"description": MEANINGS[code], "content": {PROBLEM: {"schema": schema}}}
            for code in sorted({401, 413, *codes})}


def answer(a: Answer, headers: dict | None = None) -> Response:
    media = "application/json" if a.status < 400 else PROBLEM
    return Response(a.body, status_code=a.status, headers=headers, media_type=media)


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
TOO_LARGE = answer(problem(413, "Request body too large", f"the limit is {MAX_BODY} bytes"))
NOT_JSON = answer(problem(400, "Body is not JSON",
                          "send a JSON document with Content-Type: application/json"))


class Gate:
    """What is checked before the app reads a request, in this order: the token,
    the body's size, and that a POST's body is JSON. A stranger cannot make the
    backend read a body at all, nobody can make it hold more than MAX_BODY bytes,
    and the app sees only JSON, so its 422 means JSON it does not accept."""

    def __init__(self, app, sessions: dict[str, dict]):
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if scope["path"] not in OPEN_PATHS:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            operator = self.sessions.get(token) if scheme.lower() == "bearer" else None
            if operator is None:
                return await SIGN_IN_FIRST(scope, receive, send)
            scope.setdefault("state", {})["operator"] = operator
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
        if scope["method"] == "POST" and not is_json(headers.get("content-type"), body):
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
    app.add_middleware(Gate, sessions=backend.sessions)

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException):
        return answer(problem(exc.status_code, str(exc.detail), str(exc.detail)), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return answer(problem(422, "Invalid request", detail[:2000]))

    def operator(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))],
    ) -> dict:
        # The Gate checked the token before the body was read; the bearer
        # dependency only declares the scheme in /openapi.json.
        return request.state.operator

    Authed = Annotated[dict, Depends(operator)]

    @app.post(f"{API}/session", response_model=SessionOut, responses=problems(400, 422))
    async def session(body: SessionIn):
        out = backend.sign_in(body.username, body.password)
        if out is None:
            return answer(problem(401, "Wrong username or password", "sign-in refused"))
        return out

    @app.get(f"{API}/snapshot", response_model=Snapshot, responses=problems())
    async def snapshot(_: Authed):
        return Response(backend.snapshot(), media_type="application/json")

    @app.get(
        f"{API}/events",
        responses={200: {"content": {"text/event-stream": {}}}, **problems(422)},
        response_class=StreamingResponse,
    )
    async def events(
        _: Authed, last_event_id: Annotated[str | None, Header(max_length=40)] = None
    ):
        if last_event_id is None:
            start = backend.last_id
        elif last_event_id.strip().isdigit():
            start = int(last_event_id)
        else:
            return answer(problem(422, "Invalid Last-Event-ID", "expected a non-negative integer"))

        async def stream():
            yield b"retry: 2000\n\n"
            cursor = start
            while True:
                frames = backend.frames_after(cursor)
                if frames is None:
                    yield encode_frame(backend.last_id, "reset", RESET_REASON)
                    return
                if frames:
                    frames = frames[:MAX_CHUNK]
                    cursor += len(frames)
                    yield b"".join(frames)
                    await asyncio.sleep(0)
                else:
                    before = backend.last_id
                    await backend.wait_for_events(heartbeat)
                    if backend.last_id == before:
                        yield b": heartbeat\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Stream-Id": backend.stream_id,
                     "X-Server-Time": iso(backend.sim_now())},
        )

    @app.get(f"{API}/alerts/{{alert_id}}", response_model=AlertOut, responses=problems(404, 422))
    async def get_alert(alert_id: str, _: Authed):
        alert = backend.fleet.alerts.get(alert_id)
        if alert is None:
            return answer(problem(404, "No such alert", f"no alert has the id {alert_id}"))
        return encode_alert(alert)

    @app.post(f"{API}/alerts/{{alert_id}}/acknowledge", response_model=AlertOut,
              responses=problems(400, 404, 409, 422))
    async def ack(
        alert_id: str,
        body: AckIn,
        op: Authed,
        idempotency_key: Annotated[str, Header(min_length=8, max_length=200)],
    ):
        return answer(backend.acknowledge(alert_id, body.note, op, idempotency_key))

    @app.get("/sim/ground-truth/{alert_id}", responses=problems(404, 422),
             description="Simulator only: whether a breach was real non-compliance or an equipment fault.")
    async def ground_truth(alert_id: str, _: Authed) -> dict[str, str]:
        cause = backend.fleet.truth.get(alert_id)
        if cause is None:
            return answer(problem(404, "No such alert", f"no alert has the id {alert_id}"))
        return {"alert_id": alert_id, "cause": cause}

    return app
