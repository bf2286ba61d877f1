"""HTTP surface of the simulated backend: the protocol of docs/protocol.md.

Response bodies are encoded once with orjson; the pydantic models only describe
them for /openapi.json, so a 100,000-wearer snapshot is not validated twice.
"""


import asyncio
import contextlib
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from console.domain import iso
from console.protocol.sse import encode_frame
from console.protocol.wire import API, encode_alert
from console.simulator.backend import Answer, Backend, problem

PROBLEM = "application/problem+json"
TICK_SECONDS = 0.1
RESET_REASON = b'{"reason":"resume point not in the replay buffer"}'
MAX_CHUNK = 5_000  # frames per write, so one slow client cannot hold a huge buffer


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


PROBLEMS = {code: {"model": Problem, "content": {PROBLEM: {}}}
            for code in (400, 401, 404, 409, 422)}


def answer(a: Answer) -> Response:
    media = "application/json" if a.status < 400 else PROBLEM
    return Response(a.body, status_code=a.status, media_type=media)


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

    app = FastAPI(title="EM monitoring backend (simulator)", version="1.0.0", lifespan=lifespan)

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException):
        a = problem(exc.status_code, str(exc.detail), str(exc.detail))
        return Response(a.body, exc.status_code, media_type=PROBLEM, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return answer(problem(422, "Invalid request", detail[:2000]))

    def operator(authorization: Annotated[str | None, Header()] = None) -> dict:
        scheme, _, token = (authorization or "").partition(" ")
        found = backend.sessions.get(token) if scheme.lower() == "bearer" else None
        if found is None:
            raise HTTPException(401, "Sign in first", headers={"WWW-Authenticate": "Bearer"})
        return found

    Authed = Annotated[dict, Depends(operator)]

    @app.post(f"{API}/session", response_model=SessionOut, responses=PROBLEMS)
    async def session(body: SessionIn):
        out = backend.sign_in(body.username, body.password)
        if out is None:
            return answer(problem(401, "Wrong username or password", "sign-in refused"))
        return out

    @app.get(f"{API}/snapshot", response_model=Snapshot, responses=PROBLEMS)
    async def snapshot(_: Authed):
        return Response(backend.snapshot(), media_type="application/json")

    @app.get(
        f"{API}/events",
        responses={200: {"content": {"text/event-stream": {}}}, **PROBLEMS},
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

    @app.get(f"{API}/alerts/{{alert_id}}", response_model=AlertOut, responses=PROBLEMS)
    async def get_alert(alert_id: str, _: Authed):
        alert = backend.fleet.alerts.get(alert_id)
        if alert is None:
            return answer(problem(404, "No such alert", f"no alert has the id {alert_id}"))
        return encode_alert(alert)

    @app.post(f"{API}/alerts/{{alert_id}}/acknowledge", response_model=AlertOut, responses=PROBLEMS)
    async def ack(
        alert_id: str,
        body: AckIn,
        op: Authed,
        idempotency_key: Annotated[str, Header(min_length=8, max_length=200)],
    ):
        return answer(backend.acknowledge(alert_id, body.note, op, idempotency_key))

    @app.get("/sim/ground-truth/{alert_id}", responses=PROBLEMS,
             description="Simulator only: whether a breach was real non-compliance or an equipment fault.")
    async def ground_truth(alert_id: str, _: Authed) -> dict[str, str]:
        cause = backend.fleet.truth.get(alert_id)
        if cause is None:
            return answer(problem(404, "No such alert", f"no alert has the id {alert_id}"))
        return {"alert_id": alert_id, "cause": cause}

    return app
