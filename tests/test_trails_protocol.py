"""Trails behind the legal-purpose gate, over real HTTP against the simulator
(docs/protocol.md, "Trails"): the server, not the console, refuses a trail without
a grant, outside its window, for a purpose not in the list or to anyone but the
requester; a long window waits for a supervisor; and every access is in the
wearer's access log, read back from the backend's chained audit trail."""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from backends import Backend

from console.domain import DAY
from console.domain.trails import Purpose, ReferenceKind, RequestState, Source, TrailRequest
from console.protocol.client import ApiError, Client
from console.protocol.schema import API

HOUR = 3600.0


@pytest.fixture(scope="module")
def backend():
    # Enough wearers that the backlog holds absences of GPS wearers.
    b = Backend(None, 2000).start(speed=1)
    yield b
    b.stop()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def server_now(backend) -> float:
    return datetime.fromisoformat(backend.snapshot()["server_time"]).timestamp()


def wearers_of_kind(backend, kind: str) -> list[str]:
    return [d["wearer_id"] for d in backend.snapshot()["devices"] if d["kind"] == kind]


def gps_wearer(backend, k: int = 0) -> str:
    return wearers_of_kind(backend, "gps")[k]


def ask(backend, wearer_id: str, days: float = 1.0, user: str = "demo", key: str | None = None,
        until: float | None = None, **changes):
    """POST a trail request for the `days` before `until` (a minute ago), with
    `changes` to its body; the response."""
    end = server_now(backend) - 60 if until is None else until
    body = {"id": str(uuid.uuid4()), "wearer_id": wearer_id, "purpose": "breach",
            "reference_kind": "external", "reference": "CRN-2026-0042",
            "justification": "suspected curfew breach reported by the police",
            "start": iso(end - days * DAY), "end": iso(end)} | changes
    return backend.post(f"{API}/trail-requests", user=user, json=body,
                        headers={"Idempotency-Key": key or str(uuid.uuid4())})


def fetch(backend, request_id: str, user: str = "demo", **window):
    return backend.get(f"{API}/trail-requests/{request_id}/trail", user=user,
                       params={k: iso(v) for k, v in window.items()})


def decide(backend, request_id: str, approve: bool, user: str = "super", note: str = "necessary"):
    return backend.post(f"{API}/trail-requests/{request_id}/decision", user=user,
                        json={"approve": approve, "note": note},
                        headers={"Idempotency-Key": str(uuid.uuid4())})


def access_log(backend, wearer_id: str, user: str = "audit") -> list[dict]:
    resp = backend.get(f"{API}/wearers/{wearer_id}/trail-access", user=user)
    assert resp.status_code == 200, resp.text
    return resp.json()["entries"]


def with_client(backend, user: str, work):
    """Run work(client) with the console's own client signed in as `user`."""
    async def run():
        client = Client(backend.url, user, user)
        try:
            return await work(client)
        finally:
            await client.aclose()
    return asyncio.run(run())


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return math.hypot((lat1 - lat2) * 111_320, (lon1 - lon2) * 111_320 * math.cos(math.radians(lat1)))


def test_no_trail_without_a_grant_the_server_answers_403_and_the_client_raises_it(backend):
    pending = ask(backend, gps_wearer(backend), days=10).json()
    assert pending["state"] == "pending"
    refused = fetch(backend, pending["id"])
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "the request is pending, not granted"
    with pytest.raises(ApiError) as raised:
        with_client(backend, "demo", lambda c: c.trail(pending["id"]))
    assert raised.value.status == 403 and "not granted" in raised.value.problem["detail"]
    assert fetch(backend, "no-such-request").status_code == 404


def test_a_window_beyond_the_grant_is_refused_403(backend):
    granted = ask(backend, gps_wearer(backend), days=1).json()
    assert granted["state"] == "granted"
    start, end = (datetime.fromisoformat(granted[k]).timestamp() for k in ("start", "end"))
    for window in ({"start": start - HOUR}, {"end": end + 30}, {"start": start, "end": start}):
        refused = fetch(backend, granted["id"], **window)
        assert refused.status_code == 403, window
        assert refused.json()["detail"] == "the window asked for is outside the one granted"
    assert fetch(backend, granted["id"], start=start + HOUR, end=end - HOUR).status_code == 200


def test_a_window_over_7_days_waits_for_a_supervisor_then_its_requester_may_fetch(backend):
    wearer_id = gps_wearer(backend, 1)
    now = server_now(backend)
    asked = TrailRequest(str(uuid.uuid4()), wearer_id, Purpose.ABSCONDING, ReferenceKind.EXTERNAL,
                         "HO-ABS-118", "no contact for three days, address empty",
                         now - 30 * DAY, now - 60)
    pending = with_client(backend, "demo", lambda c: c.request_trail(asked, "key-30-days"))
    assert pending.state is RequestState.PENDING and pending.requested_by == "Demo Operator"
    with pytest.raises(ApiError) as before:
        with_client(backend, "demo", lambda c: c.trail(asked.id))
    assert before.value.status == 403

    async def approve(c: Client):
        waiting = await c.trail_requests(RequestState.PENDING)
        assert asked.id in [r.id for r in waiting]  # the supervisor's approvals list
        return await c.decide_trail_request(asked.id, True, "absconding: whole month needed",
                                            "approve-30-days")

    approved = with_client(backend, "super", approve)
    assert approved.state is RequestState.GRANTED and approved.decided_by == "Demo Supervisor"
    assert approved.expires_at == pytest.approx(approved.decided_at + DAY)

    async def see(c: Client):
        return await c.trail_request(asked.id), await c.trail(asked.id)

    request, trail = with_client(backend, "demo", see)
    assert request.state is RequestState.GRANTED and request.decision_note.startswith("absconding")
    assert len(trail) > 30 * 1000 and trail.skipped == 0  # a month at one point a minute, less gaps
    assert trail.home is not None and trail.zones[0].radius_m == 100


def test_a_supervisor_cannot_approve_their_own_request(backend):
    own = ask(backend, gps_wearer(backend), days=10, user="super").json()
    refused = decide(backend, own["id"], True, user="super")
    assert refused.status_code == 403 and "separation of duties" in refused.json()["detail"]
    assert backend.get(f"{API}/trail-requests/{own['id']}", user="super").json()["state"] == "pending"


def test_a_refused_request_cannot_be_fetched_nor_decided_again(backend):
    pending = ask(backend, gps_wearer(backend), days=14).json()
    refused = decide(backend, pending["id"], False, note="disproportionate: 2 days will do")
    assert refused.status_code == 200
    assert refused.json()["state"] == "refused"
    assert refused.json()["decision_note"] == "disproportionate: 2 days will do"
    denied = fetch(backend, pending["id"])
    assert denied.status_code == 403 and denied.json()["detail"] == "the request is refused, not granted"
    again = decide(backend, pending["id"], True)
    assert again.status_code == 409 and again.json()["detail"] == "the request is refused, not pending"


def test_only_the_requester_fetches_another_operator_is_not_even_told_it_exists(backend):
    granted = ask(backend, gps_wearer(backend), days=1).json()
    assert backend.get(f"{API}/trail-requests/{granted['id']}", user="demo2").status_code == 404
    assert fetch(backend, granted["id"], user="demo2").status_code == 404
    listed = backend.get(f"{API}/trail-requests", user="demo2").json()
    assert granted["id"] not in [r["id"] for r in listed]
    # A supervisor sees the request, but the trail is the requester's alone.
    assert backend.get(f"{API}/trail-requests/{granted['id']}", user="super").status_code == 200
    by_super = fetch(backend, granted["id"], user="super")
    assert by_super.status_code == 403 and "only the operator who asked" in by_super.json()["detail"]
    assert fetch(backend, granted["id"]).status_code == 200


def test_coordinators_get_403_everywhere_and_auditors_only_read_the_access_log(backend):
    wearer_id = gps_wearer(backend)
    granted = ask(backend, wearer_id, days=1).json()
    calls = [("POST", f"{API}/trail-requests"), ("GET", f"{API}/trail-requests"),
             ("GET", f"{API}/trail-requests/{granted['id']}"),
             ("POST", f"{API}/trail-requests/{granted['id']}/decision"),
             ("GET", f"{API}/trail-requests/{granted['id']}/trail")]
    for user in ("coord", "audit"):
        for method, path in calls:
            resp = backend.request(method, path, user=user, json={},
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
            assert resp.status_code == 403, (user, method, path)
            assert resp.json()["title"] == "Not allowed"
    log = f"{API}/wearers/{wearer_id}/trail-access"
    assert backend.get(log, user="coord").status_code == 403
    assert backend.get(log, user="demo").status_code == 403
    assert backend.get(log, user="audit").status_code == 200
    assert backend.get(log, user="super").status_code == 200


def test_a_purpose_not_in_the_list_is_422_naming_the_allowed_values(backend):
    resp = ask(backend, gps_wearer(backend), purpose="curiosity")
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "purpose" in detail and all(p.value in detail for p in Purpose)


@pytest.mark.parametrize("start, end, reason", [
    (-1 * HOUR, -2 * HOUR, "the window ends before it starts"),
    (-1 * HOUR, +1 * HOUR, "the window reaches into the future"),
    (-32 * DAY, -60, "the window is longer than 31 days"),
])
def test_an_impossible_window_is_422_with_the_reason(backend, start, end, reason):
    now = server_now(backend)
    resp = ask(backend, gps_wearer(backend), start=iso(now + start), end=iso(now + end))
    assert resp.status_code == 422
    assert resp.json()["detail"] == f"the trail request: {reason}"


def test_a_reference_must_be_the_wearers_own_alert_or_case_entry(backend):
    alerts = backend.snapshot()["alerts"]
    gps = set(wearers_of_kind(backend, "gps"))
    mine = next(a for a in alerts if a["wearer_id"] in gps)
    other = next(a for a in alerts if a["wearer_id"] != mine["wearer_id"])
    wrong = ask(backend, mine["wearer_id"], reference_kind="alert", reference=other["id"])
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == f"the trail request: alert {other['id']} is not one of this wearer's"
    no_entry = ask(backend, mine["wearer_id"], reference_kind="case_entry", reference="C-none")
    assert no_entry.status_code == 422 and "not on this wearer's case" in no_entry.json()["detail"]
    right = ask(backend, mine["wearer_id"], reference_kind="alert", reference=mine["id"])
    assert right.status_code == 200 and right.json()["reference"] == mine["id"]


def test_a_wearer_whose_device_records_no_locations_is_422(backend):
    for kind in ("rf", "nfd", "wristband"):
        resp = ask(backend, wearers_of_kind(backend, kind)[0])
        assert resp.status_code == 422, kind
        assert resp.json()["detail"] == "the trail request: this wearer's device records no locations"
    assert ask(backend, "W-nobody").status_code == 404


def test_a_retry_is_the_same_request_and_its_id_with_another_body_or_operator_is_409(backend):
    wearer_id = gps_wearer(backend)
    end = server_now(backend) - 60
    first = ask(backend, wearer_id, key="trail-key-1", until=end, id="req-retried")
    assert first.status_code == 200
    assert ask(backend, wearer_id, key="trail-key-1", until=end, id="req-retried").json() == first.json()
    # The same request under a new key (the console lost the key): the request as it stands.
    assert ask(backend, wearer_id, until=end, id="req-retried").json() == first.json()
    other_body = ask(backend, wearer_id, until=end, id="req-retried", justification="another reason")
    assert other_body.status_code == 409
    assert ask(backend, wearer_id, until=end, id="req-retried", user="demo2").status_code == 409


def test_every_access_is_in_the_access_log_and_an_untouched_wearer_has_an_explicit_empty_one(backend):
    wearer_id, untouched = gps_wearer(backend, 5), gps_wearer(backend, 6)
    granted = ask(backend, wearer_id, days=2, purpose="article_8", reference="HO-A8-7").json()
    pending = ask(backend, wearer_id, days=8, purpose="subject_access_or_legal").json()
    assert decide(backend, pending["id"], True, note="SAR: the period asked for").status_code == 200
    start = datetime.fromisoformat(granted["start"]).timestamp()
    assert fetch(backend, granted["id"], start=start, end=start + HOUR).status_code == 200
    assert fetch(backend, granted["id"], start=start - HOUR).status_code == 403
    assert fetch(backend, pending["id"], user="demo2").status_code == 404
    entries = access_log(backend, wearer_id)
    assert [(e["event"], e["request_id"], e["operator"]) for e in entries] == [
        ("requested", granted["id"], "Demo Operator"), ("granted", granted["id"], "Demo Operator"),
        ("requested", pending["id"], "Demo Operator"),
        ("approved", pending["id"], "Demo Supervisor"),
        ("fetched", granted["id"], "Demo Operator"), ("denied", granted["id"], "Demo Operator"),
        ("denied", pending["id"], "Second Operator")]
    fetched = entries[4]
    assert fetched["purpose"] == "article_8" and fetched["reference"] == "HO-A8-7"
    assert fetched["reference_kind"] == "external" and fetched["roles"] == ["operator"]
    assert fetched["justification"] == "suspected curfew breach reported by the police"
    assert (datetime.fromisoformat(fetched["start"]).timestamp(),
            datetime.fromisoformat(fetched["end"]).timestamp()) == (start, start + HOUR)
    assert entries[3]["roles"] == ["supervisor"] and entries[3]["detail"] == "SAR: the period asked for"
    assert entries[5]["detail"] == "the window asked for is outside the one granted"
    assert entries[6]["detail"] == "only the operator who asked for a trail may fetch it"
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    empty = backend.get(f"{API}/wearers/{untouched}/trail-access", user="audit").json()
    assert empty["wearer_id"] == untouched and empty["entries"] == []
    assert backend.get(f"{API}/wearers/W-nobody/trail-access", user="audit").status_code == 404
    # A misspelt period is refused, not ignored: the log would cover another one.
    misspelt = backend.get(f"{API}/wearers/{wearer_id}/trail-access", user="audit",
                           params={"untill": iso(start)})
    assert misspelt.status_code == 422 and "untill" in misspelt.json()["detail"]
    log = with_client(backend, "audit", lambda c: c.trail_access(wearer_id))
    assert len(log.entries) == 7 and log.entries[4].purpose is Purpose.ARTICLE_8


def test_the_access_log_is_the_backends_chained_audit_and_survives_a_restart(start_backend, tmp_path):
    backend = start_backend(wearers=100, speed=1, state=True)
    wearer_id, end = gps_wearer(backend), server_now(backend) - 60
    granted = ask(backend, wearer_id, key="kept-key", until=end, id="kept").json()
    assert fetch(backend, granted["id"]).status_code == 200
    before = access_log(backend, wearer_id)
    assert [e["event"] for e in before] == ["requested", "granted", "fetched"]
    backend.stop()
    backend.start(speed=1)
    assert access_log(backend, wearer_id) == before
    assert backend.get(f"{API}/trail-requests/{granted['id']}").json() == granted
    assert ask(backend, wearer_id, key="kept-key", until=end, id="kept").json() == granted
    assert fetch(backend, granted["id"]).status_code == 200
    backend.stop()
    verify = subprocess.run([sys.executable, "-m", "console.simulator", "audit", "verify",
                             "--state", str(tmp_path / "backend.db")], capture_output=True, text=True)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr


def test_points_are_columnar_within_the_window_one_a_minute_with_real_gaps(backend):
    granted = ask(backend, gps_wearer(backend, 2), days=7).json()
    trail = fetch(backend, granted["id"]).json()
    start, end = (datetime.fromisoformat(granted[k]).timestamp() for k in ("start", "end"))
    t = trail["t"]
    assert len(t) == len(trail["lat"]) == len(trail["lon"]) == len(trail["accuracy"]) \
        == len(trail["source"]) > 7 * 1000
    assert start <= t[0] and t[-1] <= end and t == sorted(t)
    steps = [b - a for a, b in zip(t, t[1:], strict=False)]
    assert 55 <= statistics.median(steps) <= 65  # one a minute
    assert sum(s >= 300 for s in steps) >= 2  # signal gaps: no points at all
    assert set(trail["source"]) == {s.value for s in Source}
    limits = {"gps": (5, 15), "wifi": (20, 60), "cell": (300, 1500)}
    for source, accuracy in zip(trail["source"], trail["accuracy"], strict=True):
        assert limits[source][0] <= accuracy <= limits[source][1]
    home = trail["home"]
    assert max(metres(*home, la, lo) for la, lo in zip(trail["lat"], trail["lon"], strict=True)) < 25_000
    assert trail["curfew"] == next(w["curfew"] for w in backend.snapshot()["wearers"]
                                   if w["id"] == granted["wearer_id"])


def test_during_an_absence_alert_the_trail_is_away_from_home(backend):
    gps = set(wearers_of_kind(backend, "gps"))
    absences = [a for a in backend.snapshot()["alerts"]
                if a["type"] in ("absence_15min", "curfew_missed") and a["wearer_id"] in gps]
    assert absences
    checked = 0
    for alert in absences:
        raised = datetime.fromisoformat(alert["raised_at"]).timestamp()
        now = server_now(backend)
        cleared = datetime.fromisoformat(alert["cleared_at"]).timestamp() if alert["cleared_at"] else now
        granted = ask(backend, alert["wearer_id"], reference_kind="alert", reference=alert["id"],
                      start=iso(raised - HOUR), end=iso(min(now - 60, raised + 6 * DAY))).json()
        trail = fetch(backend, granted["id"]).json()
        away = [metres(*trail["home"], la, lo) for ti, la, lo, s in
                zip(trail["t"], trail["lat"], trail["lon"], trail["source"], strict=True)
                # The fleet is home the moment its draw says so and clears the alert at
                # the next report; the trail walks the last stretch: minutes, not points.
                if raised <= ti <= cleared - 300 and s != "cell"]  # a cell fix is too coarse
        assert all(d > 100 for d in away), (alert["id"], min(away))
        checked += len(away)
    assert checked >= 10


def test_the_same_seed_gives_the_same_trail_from_two_backends(start_backend):
    first, second = start_backend(wearers=100, speed=1), start_backend(wearers=100, speed=1)
    now = server_now(first)
    # A wearer with no alerts: the backlog's are dated from each backend's start.
    quiet = next(w for w in wearers_of_kind(first, "gps")
                 if not first.get(f"{API}/wearers/{w}").json()["alerts"]
                 and not second.get(f"{API}/wearers/{w}").json()["alerts"])
    trails = []
    for b in (first, second):
        granted = ask(b, quiet, days=3, until=now - 3 * DAY).json()
        trails.append({k: v for k, v in fetch(b, granted["id"]).json().items() if k != "request_id"})
    assert trails[0] == trails[1] and len(trails[0]["t"]) > 3 * 1000


def test_a_30_day_trail_is_made_in_well_under_2_seconds():
    from console.domain import DeviceKind
    from console.simulator.fleet import Fleet
    from console.simulator.whereabouts import trail

    fleet = Fleet(200, 7, time.time())
    i = next(k for k, d in enumerate(fleet.devices) if d.kind is DeviceKind.GPS)
    started = time.perf_counter()
    t, *_ = trail(fleet, i, fleet.now - 30 * DAY, fleet.now)
    assert time.perf_counter() - started < 2.0  # a guard, not a benchmark: about 0.05 s
    assert 30 * 1000 < len(t) <= 30 * 1440


def test_a_grant_expires_after_24_hours(start_backend):
    backend = start_backend(wearers=50, speed=7200)  # a day in 12 seconds
    granted = ask(backend, gps_wearer(backend), days=1).json()
    assert granted["state"] == "granted"
    deadline = time.monotonic() + 60
    while backend.get(f"{API}/trail-requests/{granted['id']}").json()["state"] != "expired":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    refused = fetch(backend, granted["id"])
    assert refused.status_code == 403 and refused.json()["detail"] == "the request is expired, not granted"
    assert [r["state"] for r in backend.get(f"{API}/trail-requests").json()] == ["expired"]



def test_an_access_log_period_that_ends_before_it_starts_is_422_not_an_empty_log(backend):
    """An empty log is a statement that nobody looked: never for an impossible period."""
    now = server_now(backend)
    resp = backend.get(f"{API}/wearers/{gps_wearer(backend)}/trail-access", user="audit",
                       params={"since": iso(now), "until": iso(now - DAY)})
    assert resp.status_code == 422 and "ends before it starts" in resp.json()["detail"]
