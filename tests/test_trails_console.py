"""The console's side of trail access, on a real engine against the simulator over
HTTP (issue 12): a request goes through the outbox once, the trail is fetched under
its grant and kept, a view from the cache is audited here and not fetched again, a
long window opens only once another console's supervisor approves, and no point of
the trail reaches the logs."""

import logging
import uuid

import pytest
from backends import wait_until

from console.domain.actions import ActionKind, ActionState, DecideTrailRequest, RequestTrail
from console.domain.clock import DAY
from console.domain.trails import Purpose, ReferenceKind, RequestState
from console.protocol.client import ApiError
from console.protocol.schema import API
from console.store import Store
from console.sync import SyncEngine
from console.sync.status import SyncState


@pytest.fixture
def backend(start_backend):
    return start_backend(wearers=200, speed=1)


@pytest.fixture
def engines(backend, tmp_path):
    started = []

    def start(user: str) -> SyncEngine:
        engine = SyncEngine(backend.url, user, user, str(tmp_path / f"{user}.db"), lambda c: None)
        engine.start()
        wait_until(lambda: engine.status.state is SyncState.LIVE, what=f"{user}'s engine live")
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


def gps_wearer(backend) -> str:
    return next(d["wearer_id"] for d in backend.snapshot()["devices"] if d["kind"] == "gps")


def ask(engine: SyncEngine, wearer_id: str, days: float) -> RequestTrail:
    end = engine.clock.now() - 60
    payload = RequestTrail(str(uuid.uuid4()), wearer_id, Purpose.BREACH, ReferenceKind.EXTERNAL,
                           "CRN-2026-0042", "curfew breach reported by the police",
                           end - days * DAY, end)
    engine.act(payload).result(10)
    return payload


def delivered(engine: SyncEngine, key_of: str) -> bool:
    return any(a.payload.request_id == key_of and a.state is ActionState.DELIVERED
               for a in engine.query(lambda s: s.actions((ActionState.DELIVERED,))).result(10)
               if a.kind in (ActionKind.REQUEST_TRAIL, ActionKind.DECIDE_TRAIL))


def trail_audit(path) -> list:
    store = Store(path)
    try:
        return [e for e in store.audit() if e.kind == "trail"]
    finally:
        store.close()


def test_a_granted_trail_is_fetched_once_kept_and_each_view_audited_here(backend, engines, tmp_path,
                                                                           caplog):
    caplog.set_level(logging.DEBUG)
    demo = engines("demo")
    asked = ask(demo, gps_wearer(backend), days=1)
    wait_until(lambda: delivered(demo, asked.request_id), what="the request delivered")
    request = demo.trail_request(asked.request_id).result(10)
    assert request.state is RequestState.GRANTED and request.requested_by == "Demo Operator"
    trail = demo.trail(request).result(20)
    again = demo.trail(request).result(20)
    assert len(trail) > 600 and again == trail
    assert (trail.purpose, trail.reference) == (Purpose.BREACH, "CRN-2026-0042")
    log = backend.get(f"{API}/wearers/{request.wearer_id}/trail-access", user="audit").json()
    assert [e["event"] for e in log["entries"]] == ["requested", "granted", "fetched"]  # once
    demo.stop()
    views = trail_audit(tmp_path / "demo.db")
    assert [(e.event, e.key) for e in views] == [("trail viewed", request.id)] * 2
    # Nothing of where the wearer was reaches the logs (issue 12, section 4).
    logged = caplog.text
    assert not any(f"{v:.4f}" in logged for v in trail.lat[::50] + trail.lon[::50])


def test_a_long_window_opens_only_once_a_supervisor_on_another_console_approves(backend, engines):
    demo, supervisor = engines("demo"), engines("super")
    asked = ask(demo, gps_wearer(backend), days=10)
    wait_until(lambda: delivered(demo, asked.request_id), what="the request delivered")
    waiting = demo.trail_request(asked.request_id).result(10)
    assert waiting.state is RequestState.PENDING
    with pytest.raises(ApiError) as refused:  # the server, not this console, refuses
        demo.trail(waiting).result(10)
    assert refused.value.status == 403
    queue = supervisor.trail_requests(RequestState.PENDING).result(10)
    assert asked.request_id in [r.id for r in queue]
    supervisor.act(DecideTrailRequest(asked.request_id, True, "a month's pattern is needed")).result(10)
    wait_until(lambda: delivered(supervisor, asked.request_id), what="the approval delivered")
    granted = demo.trail_request(asked.request_id).result(10)
    assert (granted.state, granted.decided_by) == (RequestState.GRANTED, "Demo Supervisor")
    trail = demo.trail(granted).result(30)
    assert trail.end - trail.start == pytest.approx(10 * DAY)
    assert trail.t[0] >= trail.start and trail.t[-1] <= trail.end


def test_a_request_the_backend_refuses_is_told_with_its_reason(backend, engines):
    demo = engines("demo")
    rf = next(d["wearer_id"] for d in backend.snapshot()["devices"] if d["kind"] == "rf")
    asked = ask(demo, rf, days=1)

    def refused():
        actions = demo.query(lambda s: s.actions((ActionState.REJECTED,))).result(10)
        return next((a for a in actions if a.kind is ActionKind.REQUEST_TRAIL), None)
    wait_until(lambda: refused() is not None, what="the refusal")
    assert "records no locations" in refused().detail
    assert refused().payload.request_id == asked.request_id
