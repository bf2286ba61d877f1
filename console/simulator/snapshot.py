"""The picture and its changes: GET /snapshot, and GET /events, the event stream."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse

from console.domain import iso
from console.protocol import schema
from console.protocol.schema import API
from console.protocol.sse import encode_frame
from console.simulator.backend import Backend, problem
from console.simulator.http import Viewer, answer, problems, returns

RESET = schema.encode(schema.Reset("resume point not in the replay buffer"))
MAX_CHUNK = 5_000  # frames per write, so one slow client cannot hold a huge buffer
EVENTS = ("Server-sent events. Each event's data is a DeviceStatus (device.status), an Alert "
          "(alert.raised, alert.updated, alert.cleared) or a Reset (reset).")


def router(backend: Backend, heartbeat: float) -> APIRouter:
    r = APIRouter()

    @r.get(f"{API}/snapshot", responses=returns(schema.Snapshot))
    async def snapshot(_: Viewer):
        return Response(backend.snapshot(), media_type="application/json")

    @r.get(
        f"{API}/events",
        responses={200: {"description": EVENTS, "content": {"text/event-stream": {}}},
                   **problems(422)},
        response_class=StreamingResponse,
    )
    async def events(
        request: Request, _: Viewer,
        last_event_id: Annotated[str | None, Header(max_length=40)] = None
    ):
        session = request.state.session
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
                    yield encode_frame(backend.last_id, "reset", RESET)
                    return
                if frames:
                    frames = frames[:MAX_CHUNK]
                    cursor += len(frames)
                    yield b"".join(frames)
                    await asyncio.sleep(0)
                else:
                    before = backend.last_id
                    await backend.wait_for_events(heartbeat)
                    if not backend.accounts.live(session):  # signed out meanwhile
                        return
                    if backend.last_id == before:
                        yield b": heartbeat\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Stream-Id": backend.stream_id,
                     "X-Server-Time": iso(backend.sim_now())},
        )

    return r
