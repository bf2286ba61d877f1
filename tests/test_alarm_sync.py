"""Handling an alert through the engine: each transition is an action in the typed
outbox, durable while the backend is away, delivered in order and exactly once,
and what another operator does arrives on the stream."""

import signal
import time
from datetime import datetime, timedelta

from conftest import wait_until
from test_sync import _pending, engine_for, settle

from console.domain import AlertState, Outcome
from console.domain.actions import (
    ActionKind,
    Claim,
    Close,
    Shelve,
    StartWork,
    Unshelve,
    anticipated,
    offered,
)
from console.sync import SyncEngine


def test_a_claim_work_and_close_queued_offline_arrive_in_order_exactly_once(
        start_backend, tmp_path):
    backend = start_backend(wearers=400, speed=0.0001, state=True)
    port = backend.url.rsplit(":", 1)[1]
    alert_id = next(a["id"] for a in backend.snapshot()["alerts"]
                    if a["state"] == "unacknowledged")
    engine = engine_for(backend.url, tmp_path / "cache.db", read_timeout=16)
    try:
        wait_until(lambda: engine.status.state == "live")
        backend.kill()
        for payload in (Claim(alert_id), StartWork(alert_id),
                        Close(alert_id, Outcome.EQUIPMENT_FAULT, "home unit replaced")):
            engine.act(payload).result(5)
        assert [a.kind.value for a in _pending(engine)] == ["claim", "start_work", "close"]
        backend = start_backend(wearers=400, speed=0.0001, state=True, port=port)
        wait_until(lambda: not _pending(engine), timeout=60, interval=0.3)
        settle(engine, backend)
        assert alert_id not in engine.query(lambda s: s.load().alerts).result(5)
    finally:
        engine.stop()
    history = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"]
    assert [h["state"] for h in history] == ["unacknowledged", "claimed", "in_work", "closed"]
    assert history[-1]["outcome"] == "equipment_fault"
    assert {h.get("by") for h in history[1:]} == {"Demo Operator"}


def test_another_operators_claim_and_shelving_reach_this_console_on_the_stream(
        start_backend, tmp_path):
    backend = start_backend(wearers=400, speed=0.0001)
    alert_id = next(a["id"] for a in backend.snapshot()["alerts"]
                    if a["state"] == "unacknowledged")
    engine = engine_for(backend.url, tmp_path / "cache.db")
    try:
        wait_until(lambda: engine.status.state == "live")
        claimed = backend.post(f"/api/v1/alerts/{alert_id}/claim", json={},
                               headers={"Idempotency-Key": "claim-by-the-other-console"})
        assert claimed.status_code == 200

        def cached():
            return engine.query(lambda s: s.load().alerts.get(alert_id)).result(5)
        wait_until(lambda: cached().state is AlertState.CLAIMED)
        assert cached().holder == "Demo Operator"
        now = engine.clock.now()
        engine.act(Shelve(alert_id, now + 3600, "engineer booked")).result(5)
        # Microseconds on the wire: the expiry comes back within one of what was sent.
        wait_until(lambda: cached().shelved_until is not None)
        assert abs(cached().shelved_until - (now + 3600)) < 1e-5
        assert cached().shelved_reason == "engineer booked" and cached().shelved(now)
        engine.act(Unshelve(alert_id)).result(5)
        wait_until(lambda: cached().shelved_until is None)
    finally:
        engine.stop()


def test_an_operator_signing_in_offline_acts_under_the_name_the_backend_gave_them(
        start_backend, tmp_path):
    backend = start_backend(wearers=400, speed=0.0001)
    alert_id = next(a["id"] for a in backend.snapshot()["alerts"]
                    if a["state"] == "unacknowledged")
    cache = tmp_path / "cache.db"
    online = engine_for(backend.url, cache)
    try:
        online.sign_in("demo", "demo").result(30)  # as the operator does, typing the password
        wait_until(lambda: online.status.state == "live")
    finally:
        online.stop()
    backend.kill()
    offline = SyncEngine(backend.url, None, None, str(cache), lambda c: None)
    offline.start()
    try:
        offline.sign_in_later("demo", "demo").result(5)
        assert offline.status.operator == "Demo Operator"  # remembered, not the sign-in name
        offline.act(Claim(alert_id)).result(5)
        [claim] = _pending(offline)
        assert claim.operator == "Demo Operator"
        # So the claim, once anticipated, is theirs: they may go on to work and close it.
        alert = offline.query(lambda s: s.load().alerts[alert_id]).result(5)
        ahead = anticipated(alert, [claim], offline.clock.now())
        assert offered(ahead, offline.status.identity, offline.clock.now())[ActionKind.CLOSE] == ""
    finally:
        offline.stop()


def test_an_action_sent_late_is_recorded_when_the_operator_acted(start_backend, tmp_path):
    """A claim made while the backend does not answer is sent once it does, and
    its history entry carries the time of the claim, not of its delivery."""
    backend = start_backend(wearers=400, speed=60)
    alert_id = next(a["id"] for a in backend.snapshot()["alerts"]
                    if a["state"] == "unacknowledged")
    engine = engine_for(backend.url, tmp_path / "cache.db", read_timeout=16)
    try:
        wait_until(lambda: engine.status.state == "live")
        backend.signal(signal.SIGSTOP)
        acted = engine.clock.now()
        engine.act(Claim(alert_id)).result(5)
        time.sleep(4)  # four minutes of the backend's time
        backend.signal(signal.SIGCONT)
        wait_until(lambda: not _pending(engine), timeout=60, interval=0.3)
        delivered = engine.clock.now()
    finally:
        engine.stop()
    claimed = backend.get(f"/api/v1/alerts/{alert_id}").json()["history"][-1]
    at = datetime.fromisoformat(claimed["at"]).timestamp()
    assert claimed["state"] == "claimed" and abs(at - acted) < 60 < delivered - at


def test_acted_at_is_kept_within_the_alerts_life_and_a_bad_one_is_a_422(start_backend):
    backend = start_backend(wearers=300, speed=1)
    alert = next(a for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged")
    raised = datetime.fromisoformat(alert["raised_at"])

    def claim(acted_at: str):
        return backend.post(f"/api/v1/alerts/{alert['id']}/claim", json={"take_over": True},
                            headers={"Idempotency-Key": f"k-{acted_at}", "Acted-At": acted_at})
    assert claim("yesterday").status_code == 422
    assert claim((raised - timedelta(days=30)).isoformat()).status_code == 200
    history = backend.get(f"/api/v1/alerts/{alert['id']}").json()["history"]
    assert history[-1]["at"] == history[-2]["at"]  # not before what came before it
