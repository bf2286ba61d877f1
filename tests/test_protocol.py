"""The simulator serves the documented protocol over real HTTP on loopback."""

import time
import uuid

import httpx
import orjson
import pytest

from console.protocol.client import decode_snapshot
from console.protocol.schema import API, decode_event
from console.protocol.sse import SSEParser


def read_stream(backend, last_id=None, until=lambda frames, parser: len(frames) >= 50,
                timeout=15.0):
    headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
    parser, frames = SSEParser(), []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{backend.url}{API}/events", timeout=timeout,
                      headers={"Authorization": f"Bearer {backend.token}", **headers}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for chunk in resp.iter_raw():
            frames += parser.feed(chunk)
            if until(frames, parser) or time.monotonic() > deadline:
                break
    return frames, parser, resp


@pytest.fixture
def backend(start_backend):
    return start_backend(wearers=300, speed=60, extra=["--heartbeat", "0.5", "--replay", "500"])


def test_every_endpoint_but_sign_in_needs_a_token(backend):
    for path in ("/snapshot", "/events", "/alerts/A00000001"):
        resp = httpx.get(f"{backend.url}{API}{path}")
        assert resp.status_code == 401
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["status"] == 401


def test_sign_in_refuses_wrong_passwords_and_bad_bodies_with_problems(backend):
    wrong = httpx.post(f"{backend.url}{API}/session", json={"username": "demo", "password": "x"})
    assert wrong.status_code == 401 and wrong.json()["title"]
    for body in ({}, {"username": 5, "password": []}, "nonsense"):
        bad = httpx.post(f"{backend.url}{API}/session", json=body)
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"


def test_snapshot_holds_the_fleet_with_stable_ids(backend):
    snap = decode_snapshot(backend.get(f"{API}/snapshot").content)
    assert len(snap.picture.wearers) == 300 and len(snap.picture.devices) == 300 and not snap.rejected
    assert {d.kind.value for d in snap.picture.devices} == {"gps", "rf", "nfd", "wristband"}
    assert snap.picture.alerts, "the simulated centre starts with open alerts"
    again = decode_snapshot(backend.get(f"{API}/snapshot").content)
    assert [w.id for w in again.picture.wearers] == [w.id for w in snap.picture.wearers]
    assert again.last_event_id >= snap.last_event_id


def test_events_resume_exactly_after_the_last_event_id(backend):
    first, _, resp = read_stream(backend, last_id=0, until=lambda f, p: len(f) >= 200)
    ids = [int(f.id) for f in first]
    assert ids == list(range(1, len(ids) + 1))
    assert resp.headers["x-stream-id"]
    resumed, _, _ = read_stream(backend, last_id=120, until=lambda f, p: len(f) >= 10)
    assert [int(f.id) for f in resumed[:10]] == list(range(121, 131))
    for f in first:
        decode_event(f.id, f.event, f.data, time.time() + 86400 * 365)


def test_the_stream_states_retry_and_sends_heartbeats(start_backend):
    quiet = start_backend(wearers=5, speed=0.001, extra=["--heartbeat", "0.2"])
    _, parser, _ = read_stream(quiet, until=lambda f, p: p.heartbeats >= 3)
    assert parser.heartbeats >= 3 and parser.retry_ms == 2000


@pytest.mark.parametrize("resume_from", ["old", "future"])
def test_a_resume_point_outside_the_replay_buffer_gets_a_reset(backend, resume_from):
    def enough():
        return backend.snapshot()["last_event_id"] > 700

    deadline = time.monotonic() + 30
    while not enough() and time.monotonic() < deadline:
        time.sleep(0.2)
    last = backend.snapshot()["last_event_id"]
    frames, _, _ = read_stream(backend, last_id=1 if resume_from == "old" else last + 10_000,
                               until=lambda f, p: any(x.event == "reset" for x in f))
    assert frames[-1].event == "reset"


def test_acknowledge_is_idempotent_by_key_and_unknown_ids_get_404(backend):
    alert = next(a for a in backend.snapshot()["alerts"] if a["state"] == "unacknowledged")
    key = str(uuid.uuid4())
    path = f"{API}/alerts/{alert['id']}/acknowledge"
    first = backend.post(path, json={"note": "called"}, headers={"Idempotency-Key": key})
    again = backend.post(path, json={"note": "called"}, headers={"Idempotency-Key": key})
    assert first.status_code == 200 and again.status_code == 200
    assert first.content == again.content
    history = backend.get(f"{API}/alerts/{alert['id']}").json()["history"]
    assert [h["state"] for h in history].count("acknowledged") == 1
    other_key = backend.post(path, json={"note": "again"},
                             headers={"Idempotency-Key": str(uuid.uuid4())})
    assert other_key.status_code == 409
    reused = backend.post(path, json={"note": "different"}, headers={"Idempotency-Key": key})
    assert reused.status_code == 422
    missing = backend.post(f"{API}/alerts/NOPE/acknowledge", json={"note": "x"},
                           headers={"Idempotency-Key": str(uuid.uuid4())})
    assert missing.status_code == 404 and missing.json()["detail"]
    assert backend.get(f"{API}/alerts/NOPE").status_code == 404


def test_malformed_requests_get_4xx_problems_not_500(backend):
    alert_id = backend.snapshot()["alerts"][0]["id"]
    cases = [
        backend.post(f"{API}/alerts/{alert_id}/acknowledge", json={"note": "x"}),  # no key
        backend.post(f"{API}/alerts/{alert_id}/acknowledge", content=b"{",
                     headers={"Idempotency-Key": "k" * 10, "content-type": "application/json"}),
        backend.post(f"{API}/alerts/{alert_id}/acknowledge", json={"note": "x" * 5000},
                     headers={"Idempotency-Key": "k" * 10}),
        backend.get(f"{API}/events", headers={"Last-Event-ID": "banana"}),
    ]
    for resp in cases:
        assert 400 <= resp.status_code < 500, resp.text
        assert resp.headers["content-type"] == "application/problem+json"


def test_openapi_document_describes_the_protocol(backend):
    doc = httpx.get(f"{backend.url}/openapi.json").json()
    for path in ("/session", "/snapshot", "/events", "/alerts/{alert_id}",
                 "/alerts/{alert_id}/acknowledge"):
        assert f"{API}{path}" in doc["paths"]


def test_ground_truth_is_kept_for_every_alert(backend):
    alert_id = backend.snapshot()["alerts"][0]["id"]
    truth = backend.get(f"/sim/ground-truth/{alert_id}", user="audit").json()
    assert truth["cause"] in ("non_compliance", "equipment_fault")


def test_a_restarted_backend_continues_the_same_id_sequence(start_backend):
    first = start_backend(wearers=100, speed=60, state=True)
    time.sleep(1.5)
    before = first.snapshot()
    first.kill()
    second = start_backend(wearers=100, speed=60, state=True)
    after = second.snapshot()
    assert after["stream_id"] == before["stream_id"]
    assert after["last_event_id"] >= before["last_event_id"]
    frames, _, _ = read_stream(second, last_id=before["last_event_id"],
                               until=lambda f, p: len(f) >= 5)
    assert int(frames[0].id) == before["last_event_id"] + 1
    assert orjson.loads(frames[0].data)


def test_one_state_file_serves_one_backend(start_backend):
    start_backend(wearers=20, speed=1, state=True)
    with pytest.raises(RuntimeError, match="exited"):
        start_backend(wearers=20, speed=1, state=True)


def test_the_embedded_backend_exits_when_its_parent_goes(start_backend):
    backend = start_backend(wearers=20, speed=1)
    backend.process.stdin.close()  # what the parent's death does to the pipe
    backend.process.wait(timeout=10)
